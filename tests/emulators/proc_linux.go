package emulators

import "syscall"

// sysProcAttr puts the server in its own process group (so Stop reaches its children) and has the kernel kill
// it if the test binary dies first, so no emulator outlives its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
