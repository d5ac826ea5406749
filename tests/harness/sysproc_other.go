//go:build !linux

package harness

import "syscall"

// childSysProcAttr: only Linux can tie a child's life to its parent; elsewhere Stop must run.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// pidAlive is conservative where it cannot check cheaply: stale folders are then never swept.
func pidAlive(int) bool { return true }
