package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// output is where the responses go: stdout, or the -o file, created when
// the first response is written to it, so that -f leaves no file behind
// for a failed transfer, as curl does.
type output struct {
	path string    // -o, or "" for w
	w    io.Writer // stdout, then the file once created
	f    *os.File
	err  error
}

// open returns the writer, creating the -o file on first use.
func (o *output) open() io.Writer {
	if o.path != "" && o.f == nil && o.err == nil {
		o.f, o.err = os.Create(o.path)
		if o.err == nil {
			o.w = o.f
		}
	}
	if o.err != nil {
		return errWriter{o.err}
	}
	return o.w
}

// close closes the -o file, if it was created.
func (o *output) close() error {
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

// writeHead prints resp's status line and headers as curl -i does.
func writeHead(w io.Writer, resp *http.Response) error {
	if _, err := fmt.Fprintf(w, "%s %s\r\n", resp.Proto, resp.Status); err != nil {
		return err
	}
	h := resp.Header
	if len(resp.TransferEncoding) > 0 && h.Get("Transfer-Encoding") == "" {
		// net/http moves it out of the header; curl shows it.
		h = h.Clone()
		h.Set("Transfer-Encoding", strings.Join(resp.TransferEncoding, ", "))
	}
	if err := h.Write(w); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\r\n")
	return err
}

// isTerminal reports whether w is a terminal (a character device other
// than /dev/null), where a progress meter would garble the body.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// stderrWriter serializes stderr: the trace, the status lines and the
// progress meter, which redraws its line in place. Any other write ends
// the meter's line first.
type stderrWriter struct {
	mu     sync.Mutex
	w      io.Writer
	inLine int // the length of the meter's open line, 0 when none
}

func (s *stderrWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLineLocked()
	return s.w.Write(p)
}

// redraw draws the meter's line over the last one.
func (s *stderrWriter) redraw(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pad := ""
	if n := s.inLine - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(s.w, "\r%s%s", line, pad)
	s.inLine = len(line)
}

// endLine ends the meter's line, if one is open.
func (s *stderrWriter) endLine() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLineLocked()
}

func (s *stderrWriter) endLineLocked() {
	if s.inLine > 0 {
		io.WriteString(s.w, "\n")
		s.inLine = 0
	}
}

// meterAfter is how long a run goes before its progress meter shows (a
// variable for the tests).
var meterAfter = 2 * time.Second

// meter counts the bytes received (response bodies) and sent (file
// bodies, replays included) by the whole run, and, when on, shows them on
// stderr with the rate and the time elapsed: from meterAfter on, or from
// the start when forced (-progress), redrawn twice a second, with a last
// line at the end. A nil or off meter still counts.
type meter struct {
	start    time.Time
	received atomic.Int64
	sent     atomic.Int64
	out      *stderrWriter
	force    bool
	stopc    chan struct{}
	done     chan struct{}
}

// startMeter starts the meter; on false makes one that only counts.
func startMeter(out *stderrWriter, on, force bool) *meter {
	m := &meter{start: time.Now(), out: out, force: force}
	if on {
		m.stopc, m.done = make(chan struct{}), make(chan struct{})
		go m.run()
	}
	return m
}

func (m *meter) run() {
	defer close(m.done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	shown := m.force // a forced meter draws at least its last line
	for {
		select {
		case <-m.stopc:
			if shown {
				m.out.redraw(m.line())
				m.out.endLine()
			}
			return
		case <-tick.C:
			if shown || time.Since(m.start) >= meterAfter {
				m.out.redraw(m.line())
				shown = true
			}
		}
	}
}

// stop ends the meter, leaving its last line, if it showed.
func (m *meter) stop() {
	if m.stopc != nil {
		close(m.stopc)
		<-m.done
		m.stopc = nil
	}
}

// line is "3.0 MiB received, 0 B sent, 1.5 MiB/s, 2.0 s".
func (m *meter) line() string {
	elapsed := time.Since(m.start)
	in, out := m.received.Load(), m.sent.Load()
	rate := float64(in+out) / max(elapsed.Seconds(), 0.001)
	return fmt.Sprintf("  %s received, %s sent, %s/s, %.1f s", size(float64(in)), size(float64(out)), size(rate), elapsed.Seconds())
}

// size is n bytes as "512 B", "1.5 KiB", "3.0 MiB"...
func size(n float64) string {
	if n < 1024 {
		return fmt.Sprintf("%.0f B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	u := -1
	for n >= 1024 && u < len(units)-1 {
		n /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s", n, units[u])
}

// counted returns r, counting what is read of it as received.
func (m *meter) counted(r io.Reader) io.Reader {
	return countingReader{r, &m.received}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countedFile returns f as a request body that counts what the transport
// reads of it as sent. It keeps f's Seek, so the Transport replays it by
// seeking, and its ReadAt, so that copies (Digest auth-int hashes one) do
// not move it and are not counted.
func (m *meter) countedFile(f *os.File) io.ReadCloser {
	return &countingFile{f: f, n: &m.sent}
}

type countingFile struct {
	f *os.File
	n *atomic.Int64
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }
func (c *countingFile) ReadAt(p []byte, off int64) (int, error)   { return c.f.ReadAt(p, off) }
func (c *countingFile) Close() error                              { return c.f.Close() }
