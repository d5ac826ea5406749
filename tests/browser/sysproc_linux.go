package browser

import "syscall"

// sysProcAttr puts Chromium in its own process group (Close kills the group: renderers and helpers too) and
// kills it if the test binary dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
