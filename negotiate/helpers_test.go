package negotiate_test

import (
	"fmt"
	"io"
	"log/slog"
)

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func fmtV(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
