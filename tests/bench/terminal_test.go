package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tkitefn\nVmPeak:\t 1300000 kB\nVmHWM:\t  243100 kB\nVmRSS:\t  237400 kB\nThreads:\t9\n"
	rss, hwm, err := parseProcStatus([]byte(status))
	if err != nil || rss != 237400<<10 || hwm != 243100<<10 {
		t.Fatalf("rss %d hwm %d err %v", rss, hwm, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\nVmHWM:\t12 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, _, err := parseProcStatus([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLastGCHeap(t *testing.T) {
	out := "gc 1 @0.011s 2%: 0.021+1.2+0.003 ms clock, 0.04+0.3/0.9/0+0.007 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\n" +
		"some log line\n" +
		"gc 2 @5.5s 1%: 0.02+2+0.01 ms clock, 0.05+1/2/0+0.02 ms cpu, 180->190->97 MB, 200 MB goal, 8 MB stacks, 0 MB globals, 2 P\n"
	if n, ok := lastGCHeap(out); !ok || n != 97<<20 {
		t.Fatalf("got %d %v, want the last GC's live heap, 97 MiB", n, ok)
	}
	if n, ok := lastGCHeap("no gc yet\n"); ok || n != -1 {
		t.Fatalf("got %d %v without a GC line", n, ok)
	}
}

// TestWriteLogFile: CRI lines of the asked text length, in time order, ending with the last line; the size
// it returns is what a reader of the texts gets, which readLines counts the same way.
func TestWriteLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod.log")
	got, err := writeLogFile(path, 10_000, 50)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cri := regexp.MustCompile(`^(\S+) stdout F (.*)$`)
	var texts strings.Builder
	var last time.Time
	lines, size := 0, int64(0)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := cri.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("line %d is not CRI: %q", lines, sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || !ts.After(last) {
			t.Fatalf("line %d: timestamp %q not after %s (%v)", lines, m[1], last, err)
		}
		last = ts
		if m[2] != termLastLine && len(m[2]) != 50 {
			t.Fatalf("line %d: text of %d bytes, want 50", lines, len(m[2]))
		}
		texts.WriteString(m[2] + "\n")
		size += int64(len(sc.Bytes())) + 1
		lines++
	}
	if size < 10_000 || got.lines != lines || got.bytes != int64(texts.Len()) {
		t.Fatalf("wrote %d bytes in %d lines, texts %d bytes; returned %+v", size, lines, texts.Len(), got)
	}
	n, l, err := readLines(strings.NewReader(texts.String() + "after the last line\n"))
	if err != nil || n != got.bytes || l != got.lines {
		t.Fatalf("readLines: %d bytes %d lines %v, want %+v", n, l, err, got)
	}
	if _, _, err := readLines(strings.NewReader("line 1\n")); err == nil {
		t.Fatal("a stream without the last line read as complete")
	}
}

func TestWatchedWait(t *testing.T) {
	w := newWatched()
	go func() { _, _ = w.Write([]byte("hello")) }()
	if err := w.wait(0, 10*time.Second, contains("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(w.size(), 10*time.Millisecond, contains("hello")); err == nil || !strings.Contains(err.Error(), "not within") {
		t.Fatalf("output before the offset counted: %v", err)
	}
	w.end(errExited)
	if err := w.wait(0, 10*time.Second, contains("never")); err == nil || !strings.Contains(err.Error(), "exit frame") {
		t.Fatalf("after the end: %v", err)
	}
}
