package terminal

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/functions/terminal/wire"
)

// failingStream gives its text, then fails as a dropped connection does.
type failingStream struct{ r io.Reader }

func (f *failingStream) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}

func (f *failingStream) Close() error { return nil }

// A stream that fails mid-way ends in an error frame naming it, after the lines it gave.
func TestLogsStreamFailingMidWayIsAnErrorFrame(t *testing.T) {
	s := &logSession{rate: 1 << 20}
	out := make(chan wire.Frame, 8)
	e := &emitter{ctx: context.Background(), out: out, ns: "ns"}
	s.copy(context.Background(), e, "web-1", "c", &failingStream{strings.NewReader("one\ntwo\n")})
	close(out)
	var got []wire.Frame
	for f := range out {
		got = append(got, f)
	}
	want := []wire.Frame{
		{Type: wire.Log, Data: "one", Namespace: "ns", Pod: "web-1", Container: "c"},
		{Type: wire.Log, Data: "two", Namespace: "ns", Pod: "web-1", Container: "c"},
		{Type: wire.Error, Data: "logs of web-1/c stopped: connection reset by peer", Namespace: "ns", Pod: "web-1",
			Container: "c"},
	}
	if len(got) != len(want) {
		t.Fatalf("frames %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
