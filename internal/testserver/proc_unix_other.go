//go:build unix && !linux

package testserver

import "syscall"

// sysProcAttr puts the server in its own process group, so Close can signal
// every process of it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
