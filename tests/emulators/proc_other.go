//go:build !linux

package emulators

import "syscall"

// sysProcAttr puts the server in its own process group, so Stop reaches its children.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
