package testserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// This file is the one launcher every server uses: it starts a process in
// a process group of its own with its output in a log file, watches it
// exit, waits until the server is ready, and stops the whole group.

// proc is a server process the package started. The zero value has not
// started; start makes it run.
type proc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error
}

// errNotReady is what a readiness check returns while the server is not
// serving yet.
var errNotReady = errors.New("not ready yet")

// start runs cmd (its Dir and Env set by the caller) in a process group of
// its own, with stdout and stderr in the file outPath. name names it in
// errors.
func (p *proc) start(name string, cmd *exec.Cmd, outPath string) error {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: starting %s: %w", name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	exited := p.exited
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
	return nil
}

// ready calls check every few milliseconds until it returns nil (the
// server serves), an error other than errNotReady, the process exits, or
// timeout passes. On failure it stops the process group.
func (p *proc) ready(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("process exited: %v", p.waitErr)
		default:
		}
		err := check()
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, errNotReady):
			_ = p.stop()
			return err
		case time.Now().After(deadline):
			_ = p.stop()
			return fmt.Errorf("not ready within %v: %w", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the process group, if the process was started.
func (p *proc) stop() error {
	if p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	return stopGroup(p.cmd.Process.Pid, p.exited)
}

// forget drops a process that failed to start, before another attempt.
func (p *proc) forget() { *p = proc{} }
