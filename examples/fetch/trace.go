package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// traceHandler prints the Transport's Debug records as a readable trace,
// one line each, like curl -v: "* message key=value ...".
type traceHandler struct {
	mu *sync.Mutex
	w  io.Writer
}

func newTraceLogger(w io.Writer) *slog.Logger {
	return slog.New(&traceHandler{mu: &sync.Mutex{}, w: w})
}

func (h *traceHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *traceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("* ")
	b.WriteString(strings.TrimPrefix(r.Message, "anyauth: "))
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.String()
		if strings.ContainsAny(v, " \"") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *traceHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *traceHandler) WithGroup(string) slog.Handler      { return h }
