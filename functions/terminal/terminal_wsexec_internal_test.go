package terminal

import (
	"errors"
	"testing"

	utilexec "k8s.io/client-go/util/exec"
)

// TestExitStatusOf: the error channel's Status as the apiserver and kubelets word it.
func TestExitStatusOf(t *testing.T) {
	for _, c := range []struct {
		name, status string
		code         int // -1: no CodeExitError
		ok           bool
	}{
		{"success", `{"metadata":{},"status":"Success"}`, -1, true},
		{"non-zero exit", `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3",` +
			`"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`, 3, false},
		{"other failure", `{"metadata":{},"status":"Failure","message":"container not found (\"x\")"}`, -1, false},
		{"plain text", `exit status 2`, -1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := exitStatusOf([]byte(c.status))
			if c.ok != (err == nil) {
				t.Fatalf("error %v, want ok=%v", err, c.ok)
			}
			var ce utilexec.CodeExitError
			if got := errors.As(err, &ce); got != (c.code >= 0) || (got && ce.Code != c.code) {
				t.Fatalf("%v: CodeExitError %v (code %d), want code %d", err, got, ce.Code, c.code)
			}
		})
	}
	if code, ok := ExitCode(exitStatusOf([]byte(`exit status 2`))); !ok || code != 2 {
		t.Fatalf("a plain-text exit status reads as %d %v, want 2", code, ok)
	}
}
