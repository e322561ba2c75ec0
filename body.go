package anyauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
)

// DefaultMaxBodyBuffer is the default Transport.MaxBodyBuffer: the most a
// Transport keeps in memory of a body it has no other way to replay.
const DefaultMaxBodyBuffer = 1 << 20

// A replaySource hands out a request's body once per attempt. It takes
// ownership of the caller's body and closes it exactly once. There is one
// implementation per way of replaying, best first:
//
//   - getBodySource: the caller's GetBody;
//   - seekSource: an io.Seeker seeked back to where it started;
//   - teeSource: any other reader, streamed at once and copied into a
//     buffer of up to the limit as it goes, so that an attempt that meets a
//     challenge can be replayed while no more than the limit was read;
//   - noBody.
type replaySource interface {
	// next returns the body of the next attempt, and the GetBody that
	// attempt's request advertises (nil when the body cannot be read
	// again independently, as Digest auth-int would need).
	next(ctx context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error)
	// canReplay reports whether next can hand out the whole body again.
	// It ends the last attempt's hold on the body first.
	canReplay() bool
	// streaming reports whether the body may be too large to replay, so
	// that ExpectContinue should hold it back until the server asks.
	streaming() bool
	// close ends the request: the caller's body is closed now, or once
	// the transport still sending the last attempt is done with it.
	close()
}

// newReplaySource prepares req's body for replay. limit < 0 never buffers.
func newReplaySource(req *http.Request, limit int64) replaySource {
	if req.Body == nil {
		return noBody{nil}
	}
	if req.Body == http.NoBody {
		return noBody{http.NoBody}
	}
	if req.GetBody != nil {
		return &getBodySource{orig: req.Body, getBody: req.GetBody}
	}
	if s, ok := req.Body.(io.ReadSeeker); ok {
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			b := &seekSource{seeker: s, start: off}
			b.init(req.Body)
			return b
		}
	}
	return newTeeSource(req.Body, limit, req.ContentLength)
}

// noBody is the source of a request without a body: nil or http.NoBody,
// as the caller gave it (net/http writes a nil body without allocating).
type noBody struct{ body io.ReadCloser }

func (b noBody) next(context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	return b.body, nil, nil
}
func (noBody) canReplay() bool { return true }
func (noBody) streaming() bool { return false }
func (noBody) close()          {}

// getBodySource replays with the caller's GetBody. The caller's own body
// goes with the first attempt; http.Transport closes it.
type getBodySource struct {
	orig    io.ReadCloser
	getBody func() (io.ReadCloser, error)
	sent    bool
}

func (b *getBodySource) next(context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	if !b.sent {
		b.sent = true
		body := b.orig
		b.orig = nil
		return body, b.getBody, nil
	}
	body, err := b.getBody()
	return body, b.getBody, err
}
func (b *getBodySource) canReplay() bool { return true }
func (b *getBodySource) streaming() bool { return false }
func (b *getBodySource) close() {
	if b.orig != nil { // never sent: the request ended before it went
		b.orig.Close()
	}
}

// shared is the caller's body as the attempts share it: it is closed once,
// when the request has ended and no attempt still reads it.
type shared struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when a read of the caller's body ends
	orig    io.ReadCloser
	reading bool // a Read of orig is in progress (without mu held)
	ended   bool // the request is over
	closed  bool // orig was closed
	current *attemptReader
	onClose func() // called once the caller's body is closed
}

func (s *shared) init(orig io.ReadCloser) {
	s.orig = orig
	s.cond.L = &s.mu
}

// closeLocked closes the caller's body once.
func (s *shared) closeLocked() {
	if !s.closed {
		s.closed = true
		s.orig.Close()
		if s.onClose != nil {
			s.onClose()
		}
	}
}

// endAttemptLocked cuts the last attempt off: its later reads fail.
func (s *shared) endAttemptLocked() {
	if s.current != nil {
		s.current.off = true
	}
}

// release ends the request. The caller's body is closed now unless the
// transport still holds the last attempt's reader, in which case its
// Close does it.
func (s *shared) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if s.current == nil || s.current.closed || s.current.off {
		s.closeLocked()
	}
}

// attemptReader is one attempt's view of a shared body. Reads of the
// caller's body run without any lock held, so a transport can give up on
// an attempt (an early response, a cancelled context) while a Read blocks.
type attemptReader struct {
	s      *shared
	read   func(r *attemptReader, p []byte) (int, error) // called with s.mu held
	ctx    context.Context                               // the request's, for teeSource
	done   <-chan struct{}                               // ctx.Done()
	off    bool                                          // cut off: the attempt is over
	closed bool                                          // the transport closed it
	n      int64                                         // bytes this attempt read
}

var errBodyCutOff = errors.New("anyauth: request body read after its attempt ended")

func (r *attemptReader) Read(p []byte) (int, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.off {
		return 0, errBodyCutOff
	}
	return r.read(r, p)
}

// Close records that the transport is done; it closes the caller's body
// if the request has already ended.
func (r *attemptReader) Close() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.closed = true
	if r.s.ended {
		r.s.closeLocked()
	}
	return nil
}

// readOrig reads the caller's body into p with s.mu released during the
// Read, and returns with it held again.
func (s *shared) readOrig(p []byte) (int, error) {
	for s.reading { // an abandoned attempt is still in a Read
		s.cond.Wait()
	}
	s.reading = true
	s.mu.Unlock()
	n, err := s.orig.Read(p)
	s.mu.Lock()
	s.reading = false
	s.cond.Broadcast()
	return n, err
}

// seekSource replays a seekable body by seeking it back to where it
// started. A new attempt waits until a read of the old one has ended, so
// that a transport still writing an old attempt can never read from the
// new position.
type seekSource struct {
	shared
	seeker io.ReadSeeker
	start  int64
}

func (b *seekSource) next(context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	body, err := b.rewind()
	return body, b.rewind, err
}

func (b *seekSource) rewind() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endAttemptLocked()
	for b.reading {
		b.cond.Wait()
	}
	if _, err := b.seeker.Seek(b.start, io.SeekStart); err != nil {
		return nil, err
	}
	r := &attemptReader{s: &b.shared, read: func(r *attemptReader, p []byte) (int, error) {
		n, err := b.readOrig(p)
		if r.off {
			return 0, errBodyCutOff
		}
		r.n += int64(n)
		return n, err
	}}
	b.current = r
	return r, nil
}

func (b *seekSource) canReplay() bool { return true }
func (b *seekSource) streaming() bool { return false }
func (b *seekSource) close()          { b.release() }

// teeSource streams a body that has neither GetBody nor Seek: the first
// attempt sends it at once, and every byte read from the caller's body is
// kept in a buffer of up to limit bytes. An attempt that meets a challenge
// can be replayed while the buffer holds every byte read so far: the
// replay sends the buffer, then goes on reading the caller's body where
// the last attempt stopped. Past the limit the body can be replayed only
// if no byte of it was read at all.
//
// The caller's body is read by a goroutine of its own, one chunk ahead of
// the transport, so that an attempt waiting on a stalled producer gives up
// when its request's context ends: net/http waits for its body writer
// before it returns, and a Read of the caller's body cannot be
// interrupted.
type teeSource struct {
	shared
	limit  int64 // < 0: never buffer
	length int64 // the request's ContentLength (0 or -1: unknown)

	buf      []byte // the first bytes of the body, all of them while !overflow
	total    int64  // bytes read from the caller's body
	overflow bool   // more than limit bytes were read: buf is not the whole prefix
	eof      bool   // the caller's body is exhausted
	srcErr   error  // the error that ended the caller's body, if not EOF
	sends    int

	// pend is the last chunk read, at stream offset pendAt: what an
	// attempt has not taken yet of it is served from there.
	pend   []byte
	pendAt int64

	pumpOnce sync.Once
	chunks   chan chunk
	quit     chan struct{} // closed with the caller's body
}

// chunk is one Read of the caller's body.
type chunk struct {
	data []byte
	err  error
}

// pumpChunkSize is how much the pump reads ahead of the transport.
const pumpChunkSize = 32 << 10

func newTeeSource(body io.ReadCloser, limit, length int64) *teeSource {
	b := &teeSource{limit: limit, length: length, chunks: make(chan chunk), quit: make(chan struct{})}
	b.init(body)
	b.onClose = func() { close(b.quit) } // the pump stops with the body
	return b
}

// pump reads the caller's body until it ends or the request does.
func (b *teeSource) pump() {
	for {
		p := make([]byte, pumpChunkSize)
		n, err := b.orig.Read(p)
		select {
		case b.chunks <- chunk{p[:n], err}:
		case <-b.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

func (b *teeSource) next(ctx context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sends > 0 && !b.canReplayLocked() {
		return nil, nil, ErrBodyNotReplayable
	}
	b.sends++
	b.endAttemptLocked()
	r := &attemptReader{s: &b.shared, read: b.readAt, done: ctx.Done(), ctx: ctx}
	b.current = r
	return r, nil, nil
}

// readAt serves attempt r, with b.mu held: from the buffer while it is
// behind the stream, from the last chunk, then from the caller's body
// (copying into the buffer) once it caught up.
func (b *teeSource) readAt(r *attemptReader, p []byte) (int, error) {
	for {
		switch {
		case r.n < int64(len(b.buf)):
			n := copy(p, b.buf[r.n:])
			r.n += int64(n)
			return n, nil
		case r.n >= b.pendAt && r.n < b.pendAt+int64(len(b.pend)):
			n := copy(p, b.pend[r.n-b.pendAt:])
			r.n += int64(n)
			return n, nil
		case r.n < b.total:
			// Bytes this attempt needs were read by an earlier one past
			// the buffer: they are gone.
			return 0, ErrBodyNotReplayable
		case b.eof:
			return 0, io.EOF
		case b.srcErr != nil:
			return 0, b.srcErr
		}
		if err := b.receive(r); err != nil {
			return 0, err
		}
	}
}

// receive waits, with b.mu released, for the next chunk of the caller's
// body and records it; it gives up when r's request ends or r is cut off.
func (b *teeSource) receive(r *attemptReader) error {
	b.pumpOnce.Do(func() { go b.pump() })
	b.mu.Unlock()
	var c chunk
	var err error
	select {
	case c = <-b.chunks:
	case <-r.done:
		err = r.ctx.Err()
	case <-b.quit:
		err = errBodyCutOff
	}
	b.mu.Lock()
	if err != nil {
		return err
	}
	n := int64(len(c.data))
	if n > 0 {
		if !b.overflow && b.limit >= 0 && b.total+n <= b.limit {
			b.buf = append(b.buf, c.data...)
		} else {
			b.overflow = true
		}
		b.pend, b.pendAt = c.data, b.total
		b.total += n
	}
	switch {
	case c.err == io.EOF:
		b.eof = true
	case c.err != nil:
		b.srcErr = c.err
	}
	if r.off {
		// Cut off while waiting: the bytes are kept for the next
		// attempt, not given to this one.
		return errBodyCutOff
	}
	return nil
}

func (b *teeSource) canReplay() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endAttemptLocked()
	return b.canReplayLocked()
}

func (b *teeSource) canReplayLocked() bool { return !b.overflow || b.total == 0 }

// streaming reports whether the body may exceed the buffer: its length is
// unknown or over the limit.
func (b *teeSource) streaming() bool {
	return b.length <= 0 || b.limit < 0 || b.length > b.limit
}

func (b *teeSource) close() { b.release() }
