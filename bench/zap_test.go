package main

// zap over a LogSocket, where the bench module's dependency on zap can
// stay out of the library's go.mod: a *LogSocket is a zapcore.WriteSyncer,
// and zap's Sync delivers what a batching LogSocket holds.

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The compiler checks what zap asks of its sink.
var _ zapcore.WriteSyncer = (*logsock.LogSocket)(nil)

func TestZapSync(t *testing.T) {
	got := make(chan string, 10)
	srv := &logsock.Server{Handler: func(rec *logsock.Record) { got <- string(rec.Msg) }}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	// A batch would wait an hour: only Sync can send it.
	ls, err := logsock.New("tcp", l.Addr().String(), &logsock.Config{Batching: true, FlushDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), ls, zapcore.InfoLevel))
	logger.Info("first", zap.Int("n", 1))
	logger.Info("second", zap.String("word", "로그"))
	if err := logger.Sync(); err != nil {
		t.Fatalf("zap's Sync: %v", err)
	}
	if st := ls.Stats(); st.Frames != 2 || st.Held != 0 {
		t.Errorf("after zap's Sync, Stats %+v: want 2 frames written, none held", st)
	}
	// The records are on their way, with the LogSocket still open.
	want := []string{`"msg":"first","n":1}`, `"msg":"second","word":"로그"}`}
	timeout := time.After(10 * time.Second)
	for i, w := range want {
		select {
		case msg := <-got:
			if !strings.Contains(msg, w) {
				t.Errorf("record %d %q, want it to hold %s", i+1, msg, w)
			}
		case <-timeout:
			t.Fatalf("the collector has %d of zap's %d records 10 s after Sync", i, len(want))
		}
	}
}
