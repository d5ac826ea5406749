package events

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// decodeHTTP is the receive path of the discovery function: a CloudEvent from an HTTP request (structured mode,
// or binary mode with body as data), validated, then its cluster data.
func decodeHTTP(body []byte, binary bool, subject string) (ClusterData, error) {
	d, _, err := decodeEvent(body, binary, subject)
	return d, err
}

func decodeEvent(body []byte, binary bool, subject string) (ClusterData, *cloudevents.Event, error) {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	if binary {
		r.Header.Set("Ce-Specversion", "1.0")
		r.Header.Set("Ce-Id", "1")
		r.Header.Set("Ce-Source", SourceClusters)
		r.Header.Set("Ce-Type", TypeClusterCreated)
		if subject != "" {
			r.Header.Set("Ce-Subject", subject)
		}
		r.Header.Set("Content-Type", "application/json")
	} else {
		r.Header.Set("Content-Type", "application/cloudevents+json")
	}
	e, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		return ClusterData{}, nil, err
	}
	if err := e.Validate(); err != nil {
		return ClusterData{}, nil, err
	}
	d, err := DecodeClusterData(*e)
	return d, e, err
}

var structured = []byte(`{"specversion":"1.0","id":"1","source":"/kitefn/clusters","type":"dev.kitefn.cluster.created",` +
	`"subject":"7","datacontenttype":"application/json","data":{"cluster":{"id":7,"name":"a","server":"https://h"}}}`)

func TestDecodeClusterDataRefusesBadData(t *testing.T) {
	if d, err := decodeHTTP(structured, false, ""); err != nil || d.Cluster.ID != 7 {
		t.Fatalf("good event: %+v, %v", d, err)
	}
	for name, c := range map[string]struct {
		body    string
		subject string
	}{
		"null":          {"null", ""},
		"no cluster":    {`{"changed":["labels"]}`, ""},
		"id 0":          {`{"cluster":{"id":0}}`, ""},
		"not an object": {`[1,2]`, ""},
		"wrong type":    {`{"cluster":{"id":"7"}}`, ""},
		"other subject": {`{"cluster":{"id":7}}`, "8"},
	} {
		if _, err := decodeHTTP([]byte(c.body), true, c.subject); !errors.Is(err, ErrNoCluster) {
			t.Errorf("%s: %v, want ErrNoCluster", name, err)
		}
	}
}

// FuzzDecodeClusterData: decoding an event from arbitrary bytes never panics, and what is accepted names a
// cluster, the one its subject names.
func FuzzDecodeClusterData(f *testing.F) {
	f.Add(structured, false, "")
	f.Add([]byte(`{"cluster":{"id":7,"labels":{"a":"b"},"prometheus":{"status":"pending","checkedAt":"2024-01-01T00:00:00Z"}},"changed":["prometheus"]}`), true, "7")
	f.Add([]byte(`{"cluster":{"id":18446744073709551615}}`), true, "")
	f.Add([]byte(`{"cluster":{"id":1e3}}`), true, "1000")
	f.Add([]byte(`{"cluster":null}`), true, "")
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"e30="}`), false, "")
	f.Add([]byte("\xff\xfe"), true, "")
	f.Fuzz(func(t *testing.T, body []byte, binary bool, subject string) {
		d, e, err := decodeEvent(body, binary, subject)
		if err != nil {
			return
		}
		if d.Cluster == nil || d.Cluster.ID == 0 {
			t.Fatalf("accepted event data without a cluster: %q", body)
		}
		// The subject as received: HTTP trims header values, so " " arrives as "" (seed 5cc335ebb9ea754c).
		if s := e.Subject(); s != "" && s != Subject(d.Cluster.ID) {
			t.Fatalf("accepted cluster %d under subject %q", d.Cluster.ID, s)
		}
	})
}
