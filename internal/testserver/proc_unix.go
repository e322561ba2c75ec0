//go:build unix

package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopGroup terminates the process group led by pid. exited must be closed
// once the leader has been reaped.
func stopGroup(pid int, exited <-chan struct{}) error {
	// While the leader or any other member lives, the group id cannot be
	// reused, so signalling -pid reaches only what we started.
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("testserver: SIGTERM process group %d: %w", pid, err)
	}
	var err error
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("testserver: process group %d ignored SIGTERM for 10s; killed", pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// Stragglers (CGI scripts, the piped access logger) are still members
	// of our group; the group id stays reserved while any of them lives.
	// Orphaned zombies waiting for init to reap them do not count.
	for i := 0; len(liveGroupMembers(pid)) > 0; i++ {
		switch {
		case i == 10:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		case i == 100:
			return errors.Join(err, fmt.Errorf("testserver: process group %d: %v still alive after SIGKILL", pid, liveGroupMembers(pid)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// liveGroupMembers returns the pids of the processes in process group pgid
// that are not zombies, read from /proc. Without /proc it falls back to
// kill(-pgid, 0), which also counts zombies.
func liveGroupMembers(pgid int) []int {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		if syscall.Kill(-pgid, 0) == nil {
			return []int{-pgid}
		}
		return nil
	}
	var pids []int
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		pids = append(pids, pid)
	}
	return pids
}

// lockFile takes an exclusive flock on f, polling until timeout passes.
// The lock goes when f is closed (or the process dies).
func lockFile(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR):
			return fmt.Errorf("testserver: flock %s: %w", f.Name(), err)
		case time.Now().After(deadline):
			return fmt.Errorf("testserver: %s still locked by another process after %v", f.Name(), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
