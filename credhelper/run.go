package credhelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// DefaultTimeout bounds each run of a helper or command when its
// Timeout field is zero: a helper that hangs (waiting for a prompt
// nobody answers, a keychain that is locked) is killed after it, with
// every process it started.
const DefaultTimeout = 10 * time.Second

// maxOutput is how much a helper may print on stdout or stderr: the
// answer to one credential request is a few lines.
const maxOutput = 1 << 20

// errOutputTooLong is wrapped by the error of a helper that printed more
// than maxOutput bytes.
var errOutputTooLong = errors.New("output too long")

// job is one run of a helper program.
type job struct {
	name    string   // what errors call it: "git credential fill"
	path    string   // the program
	args    []string // its arguments, without the program
	dir     string   // its working directory, "" for ours
	env     []string // added to our environment
	stdin   []byte   // nil for none
	timeout time.Duration
}

// run runs j and returns its stdout and stderr. It is bounded by ctx and
// by j.timeout (DefaultTimeout when zero): when either ends first, the
// program and everything it started (its process group) are killed. A
// program that exits non-zero returns its output and an *exec.ExitError.
// Nothing of the output is put in an error: it may hold a secret.
func (j *job) run(ctx context.Context) (stdout, stderr []byte, err error) {
	timeout := j.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut{j.name, timeout})
	defer cancel()
	cmd := exec.CommandContext(rctx, j.path, j.args...)
	cmd.Dir = j.dir
	if len(j.env) > 0 {
		cmd.Env = append(os.Environ(), j.env...)
	}
	if j.stdin != nil {
		cmd.Stdin = bytes.NewReader(j.stdin)
	}
	var out, errOut limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	setProcessGroup(cmd)
	// Whatever the program left holding its output (a grandchild not in
	// its group) cannot keep us waiting past the kill.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	switch {
	case rctx.Err() != nil:
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("credhelper: %s: %w", j.name, context.Cause(ctx))
		}
		return nil, nil, fmt.Errorf("credhelper: %w", context.Cause(rctx))
	case out.over || errOut.over:
		return nil, nil, fmt.Errorf("credhelper: %s: %w (over %d bytes)", j.name, errOutputTooLong, maxOutput)
	case err != nil:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out.Bytes(), errOut.Bytes(), fmt.Errorf("credhelper: %s: %w", j.name, err)
		}
		return nil, nil, fmt.Errorf("credhelper: %s: %w", j.name, err)
	}
	return out.Bytes(), errOut.Bytes(), nil
}

// errTimedOut is the cause of a run that overran its timeout. It wraps
// context.DeadlineExceeded.
type errTimedOut struct {
	name    string
	timeout time.Duration
}

// Error names the program and the timeout.
func (e errTimedOut) Error() string {
	return fmt.Sprintf("%s timed out after %v and was killed", e.name, e.timeout)
}

// Unwrap returns context.DeadlineExceeded.
func (e errTimedOut) Unwrap() error { return context.DeadlineExceeded }

// limitedBuffer keeps the first maxOutput bytes written to it and notes
// whether more came; it never fails a write, so that the program is not
// killed by a broken pipe before the limit is reported.
type limitedBuffer struct {
	bytes.Buffer
	over bool
}

// Write keeps what fits.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
