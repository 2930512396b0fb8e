package logsock

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// SlogOptions configures NewSlogHandler: slog's handler options, and the
// format.
type SlogOptions struct {
	slog.HandlerOptions
	JSON bool // each record as slog.JSONHandler writes it; else as slog.TextHandler does
}

// NewSlogHandler returns a slog.Handler that sends each record as a frame, in
// slog's text (nil opts) or JSON; with Acks, with its time and level.
func NewSlogHandler(ls *LogSocket, opts *SlogOptions) slog.Handler {
	h := &slogHandler{ls: ls}
	if opts != nil {
		h.opts = *opts
	}
	h.pool = newSinkPool(h)
	return h
}

// levelOf returns the severity of a slog level: Error and above is LevelError
// (Error+4 LevelCritical, Error+8 LevelAlert, Error+12 LevelEmergency), Warn
// LevelWarning, Info+2 LevelNotice, Info LevelInfo, and below LevelDebug.
func levelOf(l slog.Level) Level {
	switch {
	case l >= slog.LevelError+12:
		return LevelEmergency
	case l >= slog.LevelError+8:
		return LevelAlert
	case l >= slog.LevelError+4:
		return LevelCritical
	case l >= slog.LevelError:
		return LevelError
	case l >= slog.LevelWarn:
		return LevelWarning
	case l >= slog.LevelInfo+2:
		return LevelNotice
	case l >= slog.LevelInfo:
		return LevelInfo
	}
	return LevelDebug
}

// slogHandler formats with one of slog's handlers per goroutine at a time,
// kept in a pool, each writing to its own sink: so that the sink knows the
// record it writes (its time and level) without a lock around the
// formatting. WithAttrs and WithGroup are replayed on each pooled handler
// as it is made.
type slogHandler struct {
	ls   *LogSocket
	opts SlogOptions
	ops  []func(slog.Handler) slog.Handler
	pool *sync.Pool // of *slogSink
}

// slogSink is what a pooled slog handler writes a record to.
type slogSink struct {
	h   slog.Handler
	ls  *LogSocket
	m   meta
	err error
}

func newSinkPool(h *slogHandler) *sync.Pool {
	return &sync.Pool{New: func() any {
		s := &slogSink{ls: h.ls}
		if h.opts.JSON {
			s.h = slog.NewJSONHandler(s, &h.opts.HandlerOptions)
		} else {
			s.h = slog.NewTextHandler(s, &h.opts.HandlerOptions)
		}
		for _, op := range h.ops {
			s.h = op(s.h)
		}
		return s
	}}
}

// Write sends one formatted record. slog's handlers write each record
// with one Write.
func (s *slogSink) Write(p []byte) (int, error) {
	s.err = s.ls.sendMeta(bytes.TrimSuffix(p, []byte{'\n'}), s.m)
	return len(p), s.err
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.opts.Level != nil {
		min = h.opts.Level.Level()
	}
	return l >= min
}

// Handle sends r, and returns the LogSocket's error, as Log would.
func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.pool.Get().(*slogSink)
	at := r.Time
	if at.IsZero() {
		at = time.Now()
	}
	s.m, s.err = meta{at: at.UnixNano(), level: levelOf(r.Level)}, nil
	err := s.h.Handle(ctx, r)
	if err == nil {
		err = s.err
	}
	h.pool.Put(s)
	return err
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(func(s slog.Handler) slog.Handler { return s.WithAttrs(as) })
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(s slog.Handler) slog.Handler { return s.WithGroup(name) })
}

func (h *slogHandler) with(op func(slog.Handler) slog.Handler) *slogHandler {
	h2 := &slogHandler{ls: h.ls, opts: h.opts, ops: append(h.ops[:len(h.ops):len(h.ops)], op)}
	h2.pool = newSinkPool(h2)
	return h2
}
