package testserver

import "syscall"

// sysProcAttr puts the server in its own process group, so Close can signal
// every process of it, and asks the kernel to SIGTERM the server if this
// process dies without calling Close (best effort: the kernel forgets that
// when lighttpd, started as root, drops its privileges).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
