// Package browser drives headless Chromium (Debian's `chromium`) over the DevTools protocol on a pipe
// (--remote-debugging-pipe: no port, no extra dependency) for the tests of kitefn's browser page.
package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Executable finds Chromium: $KITEFN_CHROMIUM, else chromium or chromium-browser on PATH.
func Executable() (string, error) {
	if p := os.Getenv("KITEFN_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (Debian: apt-get install -y chromium; `make test` installs it " +
		"as root), or set KITEFN_CHROMIUM")
}

// Browser is one headless Chromium with one page (tab) attached.
type Browser struct {
	cmd     *exec.Cmd
	in      *os.File // our end of Chromium's fd 3 (commands)
	out     *os.File // our end of Chromium's fd 4 (answers and events)
	stderr  string   // Chromium's stderr, a file in its profile folder
	session string   // the page's flat session

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	logs    []string // console messages, exceptions and browser log entries (CSP violations among them)
	readErr error
	done    chan struct{}
}

type message struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Launch starts Chromium headless with a fresh profile in dir and opens a blank page.
func Launch(ctx context.Context, exe, dir string) (*Browser, error) {
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	stderr, err := os.Create(filepath.Join(dir, "chromium.stderr"))
	if err != nil {
		return nil, fmt.Errorf("chromium stderr: %w", err)
	}
	defer stderr.Close() // the child holds its own copy
	b := &Browser{in: cmdW, out: outR, stderr: stderr.Name(), pending: map[int64]chan message{},
		done: make(chan struct{})}
	b.cmd = exec.Command(exe, "--headless", "--remote-debugging-pipe", "--user-data-dir="+dir,
		// Root (CI) cannot use the sandbox; no GPU, no /dev/shm limits in containers.
		"--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--window-size=1200,800", "about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, outW} // fd 3, fd 4
	b.cmd.Stderr = stderr
	b.cmd.SysProcAttr = sysProcAttr()
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	cmdR.Close()
	outW.Close()
	go b.read()

	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		b.Close()
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true},
		&attached); err != nil {
		b.Close()
		return nil, err
	}
	b.session = attached.SessionID
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := b.Call(ctx, domain, nil, nil); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// read delivers answers to their callers and keeps the page's log events until the pipe closes.
func (b *Browser) read() {
	defer close(b.done)
	r := bufio.NewReader(b.out)
	for {
		raw, err := r.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("chromium closed the DevTools pipe: %w; stderr: %s", err, b.stderrTail())
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m message
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else if line := logLine(m); line != "" {
			b.logs = append(b.logs, line)
		}
		b.mu.Unlock()
	}
}

// logLine renders the events worth showing when a test fails: console output, uncaught exceptions, and the
// browser's own log (network failures, CSP refusals).
func logLine(m message) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(m.Params, &p)
		parts := []string{"console." + p.Type + ":"}
		for _, a := range p.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		return strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(m.Params, &p)
		return "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(m.Params, &p)
		return fmt.Sprintf("log %s (%s): %s %s", p.Entry.Level, p.Entry.Source, p.Entry.Text, p.Entry.URL)
	}
	return ""
}

func (b *Browser) stderrTail() string {
	data, _ := os.ReadFile(b.stderr)
	s := string(data)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// Logs are the page's console messages, exceptions and browser log entries so far.
func (b *Browser) Logs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logs...)
}

// Call sends a command to the page and decodes its result into out (nil: dropped).
func (b *Browser) Call(ctx context.Context, method string, params, out any) error {
	return b.call(ctx, b.session, method, params, out)
}

func (b *Browser) call(ctx context.Context, session, method string, params, out any) error {
	ch := make(chan message, 1)
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return err
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	var p json.RawMessage
	if params != nil {
		var err error
		if p, err = json.Marshal(params); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
	}
	data, err := json.Marshal(message{ID: id, Method: method, Params: p, SessionID: session})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if _, err := b.in.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: write to chromium: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return fmt.Errorf("%s: %w", method, b.readErr)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				return fmt.Errorf("%s: decode result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Navigate loads url in the page.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.Call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, r.ErrorText)
	}
	return nil
}

// Eval runs a JavaScript expression in the page (a promise is awaited) and decodes its value into out.
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true,
		"awaitPromise": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s", e.Text, e.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// WaitFor waits until the JavaScript expression cond is truthy in the page, re-checking on every change of the
// document and of its ready state (a MutationObserver and readystatechange, not a timer), for at most timeout; it returns cond's last value. A navigation
// meanwhile (the page not loaded yet) is retried within ctx.
func (b *Browser) WaitFor(ctx context.Context, cond string, timeout time.Duration, out any) error {
	expr := fmt.Sprintf(`new Promise((resolve, reject) => {
  const check = () => { try { return (%s); } catch (e) { return undefined; } };
  const v = check();
  if (v) { resolve(v); return; }
  const recheck = () => { const v = check(); if (v) { obs.disconnect(); clearTimeout(t); resolve(v); } };
  const obs = new MutationObserver(recheck);
  obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  document.addEventListener("readystatechange", recheck);
  const t = setTimeout(() => { obs.disconnect(); const v = check(); v ? resolve(v) : reject(new Error("timed out after %dms")); }, %d);
})`, cond, timeout.Milliseconds(), timeout.Milliseconds())
	deadline := time.Now().Add(timeout)
	for {
		err := b.Eval(ctx, expr, out)
		if err == nil {
			return nil
		}
		navigated := strings.Contains(err.Error(), "Execution context was destroyed") ||
			strings.Contains(err.Error(), "Cannot find context")
		if !navigated || time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", cond, err)
		}
	}
}

// InsertText types text into the focused element, as an input method would.
func (b *Browser) InsertText(ctx context.Context, text string) error {
	return b.Call(ctx, "Input.insertText", map[string]any{"text": text}, nil)
}

// PressEnter sends an Enter key press (keydown with "\r", keyup) to the focused element.
func (b *Browser) PressEnter(ctx context.Context) error {
	key := map[string]any{"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
	down := map[string]any{"type": "keyDown", "text": "\r", "unmodifiedText": "\r"}
	up := map[string]any{"type": "keyUp"}
	for _, ev := range []map[string]any{down, up} {
		for k, v := range key {
			ev[k] = v
		}
		if err := b.Call(ctx, "Input.dispatchKeyEvent", ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// Screenshot is a PNG of the page (for a failing test's artefacts).
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data []byte `json:"data"` // base64 in JSON: []byte decodes it
	}
	if err := b.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// Close ends Chromium and every process it started.
func (b *Browser) Close() {
	b.in.Close() // Chromium exits when its command pipe closes
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		killGroup(b.cmd.Process.Pid)
		<-exited
	}
	killGroup(b.cmd.Process.Pid) // renderers and helpers left behind, if any
	b.out.Close()
	<-b.done
}
