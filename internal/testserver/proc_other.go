//go:build !unix

package testserver

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

// Process groups are a Unix notion; on other systems the servers cannot be
// managed, and the Start functions say they are not installed.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func stopGroup(pid int, exited <-chan struct{}) error {
	return fmt.Errorf("testserver: cannot stop process %d on %s", pid, runtime.GOOS)
}

func liveGroupMembers(pgid int) []int { return nil }

func lockFile(f *os.File, timeout time.Duration) error {
	return fmt.Errorf("testserver: cannot lock %s on %s", f.Name(), runtime.GOOS)
}

func init() {
	unsupported = fmt.Errorf("%w: testserver needs a Unix system, not %s", ErrNotInstalled, runtime.GOOS)
}
