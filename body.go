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
// the buffer limit. A larger body is a stream: it can be sent again only
// if no byte of it was read (a server that answered a request sent with
// "Expect: 100-continue" before asking for the body).
type replayBody struct {
	orig    io.ReadCloser
	getBody func() (io.ReadCloser, error)

	seeker io.ReadSeeker
	start  int64

	buf []byte

	stream io.Reader // set when the body can be sent once only

	current   *guardedReader // the shared reader of the last attempt (seeker, stream)
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
		b.stream = req.Body
		return b, nil
	}
	// Buffer up to limit+1 bytes: if that much is there, the body is too
	// large and is streamed (the buffered head first, then the rest).
	head, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		b.closeOrig()
		return nil, err
	}
	if int64(len(head)) > limit {
		b.stream = io.MultiReader(bytes.NewReader(head), req.Body)
		return b, nil
	}
	b.buf = head
	b.closeOrig()
	return b, nil
}

// isStream reports whether the body can be sent only once.
func (b *replayBody) isStream() bool { return b.stream != nil }

// canReplay reports whether next can hand out the body once more. For a
// stream it cuts the last attempt off, and then asks whether it read any.
func (b *replayBody) canReplay() bool {
	if b.stream == nil || b.current == nil {
		return true
	}
	b.current.cutOff()
	return b.current.bytesRead() == 0
}

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
	case b.stream != nil:
		if !b.canReplay() {
			return nil, nil, ErrBodyNotReplayable
		}
		b.current = &guardedReader{r: b.stream, closeOrig: b.closeOrig}
		return b.current, nil, nil
	}
	return http.NoBody, nil, nil
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
	b.current = &guardedReader{r: b.seeker, closeOrig: b.closeOrig}
	return b.current, nil
}

// close ends the request: the caller's body is closed now, or, when the
// last attempt's transport is still sending it, as soon as it is done.
func (b *replayBody) close() {
	if b.current != nil {
		b.current.release()
		return
	}
	b.closeOrig()
}

// closeOrig closes the caller's body once, unless a transport took it.
func (b *replayBody) closeOrig() {
	b.closeOnce.Do(func() {
		if b.orig != nil {
			b.orig.Close()
		}
	})
}

var errBodyCutOff = errors.New("anyauth: request body read after its attempt ended")

// guardedReader reads a shared body (a seekable one, or a stream) for one
// attempt until it is cut off, and counts what it read. Closing it tells
// that the transport is done with it; the caller's body is closed once
// the request has ended too.
type guardedReader struct {
	mu        sync.Mutex
	r         io.Reader
	n         int64
	off       bool // cut off: the attempt is over
	closed    bool // the transport closed it
	ended     bool // the request is over: close the caller's body on Close
	closeOrig func()
}

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.off {
		return 0, errBodyCutOff
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

// Close records that the transport is done; it closes the caller's body
// if the request has already ended.
func (g *guardedReader) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.ended {
		g.closeOrig()
	}
	return nil
}

func (g *guardedReader) cutOff() {
	g.mu.Lock()
	g.off = true
	g.mu.Unlock()
}

func (g *guardedReader) bytesRead() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// release ends the request: the caller's body is closed now if the
// transport is done with this attempt, or when it closes it.
func (g *guardedReader) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = true
	if g.closed || g.off {
		g.closeOrig()
	}
}
