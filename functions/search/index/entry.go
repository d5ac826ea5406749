package index

import (
	"sort"
	"strings"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// lastApplied is kubectl's copy of the whole object: never kept (it would hold a Secret's data too).
	lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	// annotationValueMax and annotationsMax bound what one object's annotations may cost: annotations are
	// searched as text, and a few controllers write kilobytes into them.
	annotationValueMax = 128
	annotationsMax     = 384
	// sep separates the key=value pairs of a packed label or annotation string: it cannot occur in a key, and a
	// search term never holds it (parseQuery drops it).
	sep = '\x00'
)

// entry is what the index keeps of one object: its name and labels (as given, for answers, and lower-cased
// once, for matching), its UID and creation time, and its annotations lower-cased (searched, never shown).
// The namespace is the bucket's, the kind the Kind's. Lower-cased strings share the original's memory when it
// is already lower case.
type entry struct {
	name    string
	lname   string
	uid     string
	labels  string // "k=v\x00k=v", sorted by key
	llabels string
	lannots string
	created int64 // Unix seconds
}

// entryOverhead is the fixed cost of one entry: the struct in its bucket's slice plus its slot in the bucket's
// name → position map (key header, value, and Go's map bucket overhead, amortised).
const entryOverhead = int64(unsafe.Sizeof(entry{})) + 48

// size is an honest estimate of the bytes one entry holds: its fixed cost and every string it alone owns.
func (e *entry) size() int64 {
	n := entryOverhead + int64(len(e.name)+len(e.uid)+len(e.labels)+len(e.lannots))
	if !sameString(e.lname, e.name) {
		n += int64(len(e.lname))
	}
	if !sameString(e.llabels, e.labels) {
		n += int64(len(e.llabels))
	}
	return n
}

// sameString says a and b share their bytes (strings.ToLower returns its argument when nothing changes).
func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b))
}

// newEntry converts an object's metadata at once; nothing of the object is kept (managedFields, the
// last-applied annotation and the rest are dropped with it).
func newEntry(m *metav1.PartialObjectMetadata) entry {
	e := entry{name: m.Name, uid: string(m.UID), created: m.CreationTimestamp.Unix()}
	e.lname = strings.ToLower(e.name)
	e.labels = pack(m.Labels, "", 0, 0)
	e.llabels = strings.ToLower(e.labels)
	e.lannots = strings.ToLower(pack(m.Annotations, lastApplied, annotationValueMax, annotationsMax))
	return e
}

// pack writes a map as "k=v\x00k=v" sorted by key, leaving out skip, cutting values at valueMax and the whole
// at max bytes (0: no limit).
func pack(m map[string]string, skip string, valueMax, max int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	size := 0
	for k, v := range m {
		if k == skip {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	if max > 0 && size > max {
		size = max
	}
	var b strings.Builder
	b.Grow(size)
	for i, k := range keys {
		v := m[k]
		if valueMax > 0 && len(v) > valueMax {
			v = v[:valueMax]
		}
		add := len(k) + len(v) + 1
		if i > 0 {
			add++
		}
		if max > 0 && b.Len()+add > max {
			break
		}
		if i > 0 {
			b.WriteByte(sep)
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// Labels unpacks an entry's labels for an answer.
func unpack(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		pair := s
		if i := strings.IndexByte(s, sep); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		k, v, _ := strings.Cut(pair, "=")
		out[k] = v
	}
	return out
}

// labelMatch says whether packed lower-cased labels hold key (exactly) with a value containing val; exact
// is whether the value is val itself.
func labelMatch(packed, key, val string) (found, exact bool) {
	for packed != "" {
		pair := packed
		if i := strings.IndexByte(packed, sep); i >= 0 {
			pair, packed = packed[:i], packed[i+1:]
		} else {
			packed = ""
		}
		if len(pair) <= len(key) || pair[len(key)] != '=' || pair[:len(key)] != key {
			continue
		}
		v := pair[len(key)+1:]
		if strings.Contains(v, val) {
			return true, v == val
		}
	}
	return false, false
}
