package anyauth

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// DefaultMaxBodyBuffer is the default Transport.MaxBodyBuffer: the most a
// Transport buffers of a body it has no other way to replay.
const DefaultMaxBodyBuffer = 1 << 20

// replayBody hands out the request body once per attempt. It takes
// ownership of the caller's body and closes it exactly once.
//
// How it replays, best first: the caller's GetBody; seeking an
// io.Seeker back to where it started; a copy in memory when the body fits
// the buffer limit. A larger body is streamed once and cannot be replayed.
type replayBody struct {
	orig    io.ReadCloser
	getBody func() (io.ReadCloser, error)

	seeker  io.ReadSeeker
	start   int64
	current *guardedReader // the seeker's reader of the last attempt

	buf    []byte
	stream bool // sent once, never again

	sends     int
	closeOnce sync.Once
}

// newReplayBody prepares req's body for replay. limit < 0 never buffers.
func newReplayBody(req *http.Request, limit int64) (*replayBody, error) {
	b := &replayBody{orig: req.Body}
	if req.Body == nil || req.Body == http.NoBody {
		b.orig = nil
		return b, nil
	}
	if req.GetBody != nil {
		b.getBody = req.GetBody
		return b, nil
	}
	if s, ok := req.Body.(io.ReadSeeker); ok {
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			b.seeker, b.start = s, off
			return b, nil
		}
	}
	if limit < 0 {
		b.stream = true
		return b, nil
	}
	// Buffer up to limit+1 bytes: if that much is there, the body is too
	// large and is streamed (the buffered head first, then the rest).
	head, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		b.close()
		return nil, err
	}
	if int64(len(head)) > limit {
		b.stream = true
		b.orig = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}
		return b, nil
	}
	b.buf = head
	b.close()
	return b, nil
}

// canReplay reports whether next can hand out the body once more.
func (b *replayBody) canReplay() bool { return !b.stream || b.sends == 0 }

// next returns the body for the next attempt, and the GetBody to set on
// that attempt's request (nil when the body cannot be read again).
func (b *replayBody) next() (io.ReadCloser, func() (io.ReadCloser, error), error) {
	b.sends++
	switch {
	case b.getBody != nil:
		if b.sends == 1 && b.orig != nil {
			// The caller's own body goes first; http.Transport closes it.
			body := b.orig
			b.orig = nil
			return body, b.getBody, nil
		}
		body, err := b.getBody()
		return body, b.getBody, err
	case b.seeker != nil:
		body, err := b.rewind()
		return body, b.rewind, err
	case b.buf != nil:
		return io.NopCloser(bytes.NewReader(b.buf)), b.bufferedBody, nil
	case b.stream:
		if b.sends > 1 {
			return nil, nil, ErrBodyNotReplayable
		}
		body := b.orig
		b.orig = nil
		return body, nil, nil
	}
	return http.NoBody, nil, nil
}

func (b *replayBody) bufferedBody() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.buf)), nil
}

// rewind seeks the body back to its start and returns a reader of it.
// The reader of the previous attempt is cut off first, so a transport
// still writing an old attempt can never read from the new position.
func (b *replayBody) rewind() (io.ReadCloser, error) {
	if b.current != nil {
		b.current.cutOff()
	}
	if _, err := b.seeker.Seek(b.start, io.SeekStart); err != nil {
		return nil, err
	}
	b.current = &guardedReader{r: b.seeker}
	return b.current, nil
}

// close closes the caller's body if no transport took it.
func (b *replayBody) close() {
	b.closeOnce.Do(func() {
		if b.current != nil {
			b.current.cutOff()
		}
		if b.orig != nil {
			b.orig.Close()
		}
	})
}

var errBodyCutOff = errors.New("anyauth: request body read after its attempt ended")

// guardedReader reads a shared seekable body for one attempt until cut off.
// Its Close does nothing: the caller's body is closed once, at the end.
type guardedReader struct {
	mu  sync.Mutex
	r   io.Reader
	off bool
}

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.off {
		return 0, errBodyCutOff
	}
	return g.r.Read(p)
}

func (g *guardedReader) Close() error { return nil }

func (g *guardedReader) cutOff() {
	g.mu.Lock()
	g.off = true
	g.mu.Unlock()
}

// getBodyFunc returns a GetBody for the request, nil when the body cannot
// be read again.
func (b *replayBody) getBodyFunc() func() (io.ReadCloser, error) {
	switch {
	case b.getBody != nil:
		return b.getBody
	case b.seeker != nil:
		return b.rewind
	case b.buf != nil:
		return b.bufferedBody
	}
	return nil
}
