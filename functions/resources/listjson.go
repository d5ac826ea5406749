package resources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The apiserver's list answers are passed on without decoding their items: a 5,000-Pod list is tens of MB and
// decoding it into unstructured maps costs several times the apiserver's own time. A small scanner finds each
// item's span, its creationTimestamp (to order newest first) and its managedFields (~80% of metadata bytes,
// noise to a dashboard), and the items are written back as the bytes they were.

var errScan = errors.New("malformed JSON from the apiserver")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'. IndexByte is vectorised, which is
// what makes scanning tens of MB cheap: most bytes of a Kubernetes object are inside strings.
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errScan
		}
		j += k
		backslashes := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return j + 1, nil
		}
		j++
	}
}

// structural marks the bytes skipValue must look at inside containers.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errScan
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			if !structural[b[j]] {
				continue
			}
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errScan
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	if j == i {
		return 0, errScan
	}
	return j, nil
}

// member is one "key": value of an object: spans into the scanned bytes.
type member struct {
	key                     []byte // without quotes
	start, valStart, valEnd int    // start is the key's opening quote
	raw                     []byte // when set, written instead of the span (a rewritten envelope member)
}

// members calls fn for each member of the object at b[i] == '{' and returns the index after the object.
// fn returning false stops early (the returned index is then 0).
func members(b []byte, i int, fn func(m member) bool) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, errScan
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errScan
		}
		keyEnd, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		j := skipWS(b, keyEnd)
		if j >= len(b) || b[j] != ':' {
			return 0, errScan
		}
		vs := skipWS(b, j+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return 0, err
		}
		if !fn(member{key: b[i+1 : keyEnd-1], start: i, valStart: vs, valEnd: ve}) {
			return 0, nil
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, errScan
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errScan
		}
		i = skipWS(b, i+1)
	}
}

// listItem is one item of a list: its bytes, its creation time (raw RFC 3339, UTC, so it orders as text), its
// namespace and name (raw: DNS names have no escapes), for scope filtering, and the span of its
// metadata.managedFields member including one adjacent comma (cut[0] == cut[1] if none).
type listItem struct {
	raw             []byte
	created         []byte
	namespace, name []byte
	cut             [2]int
}

// scanList splits a list answer into its envelope members and its items.
func scanList(b []byte) (envelope []member, items []listItem, err error) {
	start := skipWS(b, 0)
	var itemsSpan [2]int
	var scanErr error
	_, err = members(b, start, func(m member) bool {
		if string(m.key) == "items" {
			itemsSpan = [2]int{m.valStart, m.valEnd}
			return true
		}
		envelope = append(envelope, m)
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	if itemsSpan[1] == 0 || b[itemsSpan[0]] == 'n' { // "items": null
		return envelope, nil, nil
	}
	if b[itemsSpan[0]] != '[' {
		return nil, nil, errScan
	}
	i := skipWS(b, itemsSpan[0]+1)
	for i < itemsSpan[1]-1 {
		end, err := skipValue(b, i)
		if err != nil {
			return nil, nil, err
		}
		it, err := scanItem(b[i:end])
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	return envelope, items, scanErr
}

func scanItem(raw []byte) (listItem, error) {
	it := listItem{raw: raw}
	var inner error
	_, err := members(raw, 0, func(m member) bool {
		if string(m.key) != "metadata" {
			return true
		}
		var prevEnd = -1
		_, inner = members(raw, m.valStart, func(md member) bool {
			switch string(md.key) {
			case "creationTimestamp":
				if raw[md.valStart] == '"' {
					it.created = raw[md.valStart+1 : md.valEnd-1]
				}
			case "namespace":
				if raw[md.valStart] == '"' {
					it.namespace = raw[md.valStart+1 : md.valEnd-1]
				}
			case "name":
				if raw[md.valStart] == '"' {
					it.name = raw[md.valStart+1 : md.valEnd-1]
				}
			case "managedFields":
				it.cut = cutSpan(raw, md, prevEnd)
			}
			prevEnd = md.valEnd
			return true
		})
		return false
	})
	if inner != nil {
		return it, inner
	}
	return it, err
}

// cutSpan is the span to remove for member md so the object stays valid: through the following comma, or from
// the preceding one when md is last.
func cutSpan(raw []byte, md member, prevEnd int) [2]int {
	after := skipWS(raw, md.valEnd)
	if after < len(raw) && raw[after] == ',' {
		return [2]int{md.start, skipWS(raw, after+1)}
	}
	if prevEnd >= 0 {
		return [2]int{prevEnd, md.valEnd}
	}
	return [2]int{md.start, md.valEnd}
}

// writeList writes the list newest first, without managedFields unless keep is set.
func writeList(w io.Writer, b []byte, envelope []member, items []listItem, keepManaged bool) error {
	order := make([]int32, len(items)) // sorting indices, not 80-byte items, halves the sort's cost
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(x, y int32) int { return bytes.Compare(items[y].created, items[x].created) })
	bw := &errWriter{w: w}
	bw.write([]byte("{"))
	for _, m := range envelope {
		if m.raw != nil {
			bw.write(m.raw)
		} else {
			bw.write(b[m.start:m.valEnd])
		}
		bw.write([]byte(","))
	}
	bw.write([]byte(`"items":[`))
	for i, idx := range order {
		it := items[idx]
		if i > 0 {
			bw.write([]byte(","))
		}
		if keepManaged || it.cut[0] == it.cut[1] {
			bw.write(it.raw)
			continue
		}
		bw.write(it.raw[:it.cut[0]])
		bw.write(it.raw[it.cut[1]:])
	}
	bw.write([]byte("]}\n"))
	if bw.err != nil {
		return fmt.Errorf("writing list: %w", bw.err)
	}
	return nil
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}
