package anyauth

import (
	"context"
	"errors"
	"fmt"
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
//
// The GetBody an attempt's request advertises makes copies of the body
// that read it independently of the attempt: a Leg hashes one (Digest
// auth-int) just before the attempt is sent, and the base transport may
// send one instead of the attempt's body when it retries. Making or
// reading a copy neither ends the attempt nor moves where it reads.
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
			return newSeekSource(req.Body, s, off)
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
	// live are the last attempt's reader and the copies its GetBody
	// made; gen counts the attempts ended, so that the GetBody of an
	// ended attempt makes no more copies.
	live    []*attemptReader
	gen     uint64
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

// endAttemptLocked cuts the last attempt off, with the copies of its
// body: their later reads fail.
func (s *shared) endAttemptLocked() {
	for i, r := range s.live {
		r.off = true
		s.live[i] = nil
	}
	s.live = s.live[:0]
	s.gen++
}

// openLocked reports whether a reader of the last attempt, or a copy, may
// still be read: it was neither closed nor cut off.
func (s *shared) openLocked() bool {
	for _, r := range s.live {
		if !r.closed && !r.off {
			return true
		}
	}
	return false
}

// release ends the request. The caller's body is closed now unless the
// transport still holds the last attempt's reader (or a copy), in which
// case the last Close does it.
func (s *shared) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if !s.openLocked() {
		s.closeLocked()
	}
}

// copyableLocked reports whether the GetBody of attempt gen may make a
// copy: that attempt is still the last, and the request goes on.
func (s *shared) copyableLocked(gen uint64) bool {
	return gen == s.gen && !s.ended && !s.closed
}

// attemptReader is one attempt's view of a shared body, or a copy of it
// that its GetBody made. Reads of the caller's body run without any lock
// held, so a transport can give up on an attempt (an early response, a
// cancelled context) while a Read blocks.
type attemptReader struct {
	s      *shared
	read   func(r *attemptReader, p []byte) (int, error) // called with s.mu held
	ctx    context.Context                               // the request's, for teeSource
	done   <-chan struct{}                               // ctx.Done()
	off    bool                                          // cut off: the attempt is over
	closed bool                                          // the transport closed it
	n      int64                                         // bytes this reader read
}

var errBodyCutOff = errors.New("anyauth: request body read after its attempt ended")

// errBodyOverBuffer is what a copy of a body that has neither GetBody nor
// Seek gives once it would read past the buffer: the body cannot be read
// again whole. Digest answers qop=auth then, when it may.
var errBodyOverBuffer = fmt.Errorf("%w: it is larger than Transport.MaxBodyBuffer", ErrBodyNotReplayable)

func (r *attemptReader) Read(p []byte) (int, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.off {
		return 0, errBodyCutOff
	}
	return r.read(r, p)
}

// Close records that the transport is done; it closes the caller's body
// if the request has already ended and no other reader is still open.
func (r *attemptReader) Close() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.closed = true
	if r.s.ended && !r.s.openLocked() {
		r.s.closeLocked()
	}
	return nil
}

// seekSource replays a seekable body by seeking it back to where it
// started. Every reader (the attempt's, or a copy its GetBody made) reads
// from where it is in the body: a read seeks there first if another
// reader moved the body meanwhile. A copy reads with ReadAt when the body
// has it (*os.File), which leaves the body's offset alone. Reads of the
// caller's body are serialized, so that a transport still writing an
// old attempt never reads while another reader seeks.
type seekSource struct {
	shared
	seeker io.ReadSeeker
	at     io.ReaderAt // the body's ReadAt, if any, for copies
	start  int64
	pos    int64 // the body's offset, or -1 when unknown (a Seek failed)
}

func newSeekSource(body io.ReadCloser, s io.ReadSeeker, start int64) *seekSource {
	b := &seekSource{seeker: s, start: start, pos: start}
	b.at, _ = s.(io.ReaderAt)
	b.init(body)
	return b
}

func (b *seekSource) next(context.Context) (io.ReadCloser, func() (io.ReadCloser, error), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endAttemptLocked()
	for b.reading { // an abandoned attempt is still in a Read
		b.cond.Wait()
	}
	if _, err := b.seeker.Seek(b.start, io.SeekStart); err != nil {
		b.pos = -1
		return nil, nil, err
	}
	b.pos = b.start
	r := &attemptReader{s: &b.shared, read: b.readAttempt}
	b.live = append(b.live, r)
	gen := b.gen
	return r, func() (io.ReadCloser, error) { return b.copyBody(gen) }, nil
}

// copyBody is attempt gen's GetBody: a reader of the whole body of its
// own, from the start.
func (b *seekSource) copyBody(gen uint64) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.copyableLocked(gen) {
		return nil, errBodyCutOff
	}
	r := &attemptReader{s: &b.shared, read: b.readCopy}
	b.live = append(b.live, r)
	return r, nil
}

func (b *seekSource) readAttempt(r *attemptReader, p []byte) (int, error) {
	return b.readLocked(r, p, false)
}

func (b *seekSource) readCopy(r *attemptReader, p []byte) (int, error) {
	return b.readLocked(r, p, b.at != nil)
}

// readLocked reads the body at r's position into p, with ReadAt when
// useAt is set, else by seeking there (unless the body is there) and
// reading. It waits for any other read to end, runs its own with b.mu
// released, and returns with b.mu held again.
func (b *seekSource) readLocked(r *attemptReader, p []byte, useAt bool) (int, error) {
	for b.reading {
		b.cond.Wait()
	}
	if r.off {
		return 0, errBodyCutOff
	}
	off := b.start + r.n
	if !useAt && b.pos != off {
		if _, err := b.seeker.Seek(off, io.SeekStart); err != nil {
			b.pos = -1
			return 0, err
		}
		b.pos = off
	}
	b.reading = true
	b.mu.Unlock()
	var n int
	var err error
	if useAt {
		n, err = b.at.ReadAt(p, off)
	} else {
		n, err = b.seeker.Read(p)
	}
	b.mu.Lock()
	b.reading = false
	b.cond.Broadcast()
	if !useAt {
		b.pos += int64(n)
	}
	if r.off {
		return 0, errBodyCutOff
	}
	r.n += int64(n)
	return n, err
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
//
// While the buffer may still hold the whole body, an attempt's GetBody
// makes copies that read it from the buffer, reading the caller's body
// into the buffer as they go; a copy that would read past the limit fails
// with errBodyOverBuffer instead, leaving the chunk it received for the
// attempt, which can still send the whole body.
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

	receiving bool // a reader waits for the next chunk (without mu held)

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
	b.live = append(b.live, r)
	if !b.fitsLocked() {
		return r, nil, nil
	}
	gen := b.gen
	return r, func() (io.ReadCloser, error) { return b.copyBody(ctx, gen) }, nil
}

// fitsLocked reports whether the buffer may still hold the whole body: no
// more than the limit was read, and the body is not known to be longer.
func (b *teeSource) fitsLocked() bool {
	return b.limit >= 0 && !b.overflow && b.length <= b.limit
}

// copyBody is attempt gen's GetBody: a reader of the whole body from the
// buffer.
func (b *teeSource) copyBody(ctx context.Context, gen uint64) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.copyableLocked(gen) {
		return nil, errBodyCutOff
	}
	if !b.fitsLocked() {
		return nil, errBodyOverBuffer
	}
	r := &attemptReader{s: &b.shared, read: b.readCopy, done: ctx.Done(), ctx: ctx}
	b.live = append(b.live, r)
	return r, nil
}

// readCopy serves copy r, with b.mu held: from the buffer, which while
// !overflow holds every byte read so far, then from the caller's body
// (into the buffer). It never takes a chunk that overflowed the buffer,
// so that the attempt, which has not read it yet, still can.
func (b *teeSource) readCopy(r *attemptReader, p []byte) (int, error) {
	for {
		switch {
		case r.n < int64(len(b.buf)):
			n := copy(p, b.buf[r.n:])
			r.n += int64(n)
			return n, nil
		case b.overflow:
			return 0, errBodyOverBuffer
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
// One reader receives at a time, so that chunks are recorded in the order
// they were read; another returns once that one is done, to look again.
func (b *teeSource) receive(r *attemptReader) error {
	if b.receiving {
		b.cond.Wait()
		if r.off {
			return errBodyCutOff
		}
		return r.ctx.Err()
	}
	b.receiving = true
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
	b.receiving = false
	b.cond.Broadcast()
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
