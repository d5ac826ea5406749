package harness

import (
	"errors"
	"syscall"
)

// childSysProcAttr makes children die with the test binary (even on a panic, a timeout or SIGKILL), and puts
// them in their own process group so a Ctrl-C reaches only `go test`, which then stops them in order: a
// SIGINT to etcd and the apiserver at once hangs the apiserver for 30 s. Pdeathsig fires when the forking OS
// thread exits; the Go runtime only ends threads of goroutines that exit while locked to them.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// pidAlive reports whether a process with this pid exists (EPERM means it exists under another user).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
