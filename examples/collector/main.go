// Command collector is the article's log server done properly: it accepts
// logsock streams on TCP and Unix sockets and prints one line a record.
//
//	go run ./examples/collector                      # 127.0.0.1:39999
//	go run ./examples/collector -json -listen unix:///tmp/log.sock
//
// Flags: -listen (repeatable: tcp://host:port, host:port or unix:///path),
// -json (JSON Lines with keys time, conn, pid, msg), -order little|big,
// -max-frame (bytes), -codepoints (lengths count code points, as the
// article's Python client sends them). It prints where it listens, and each
// connection's end, on standard error. SIGINT or SIGTERM drains the
// connections and exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var listen listFlag
	flag.Var(&listen, "listen", "address to listen on, repeatable: tcp://host:port or unix:///path (default 127.0.0.1:39999)")
	jsonOut := flag.Bool("json", false, "print JSON Lines instead of text")
	maxFrame := flag.Int("max-frame", logsock.DefaultMaxFrame, "largest message accepted, in bytes")
	codePoints := flag.Bool("codepoints", false, "lengths count code points (the article's Python client)")
	var order logsock.ByteOrder
	flag.TextVar(&order, "order", logsock.LittleEndian, "byte order: little or big")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("collector: ")
	if len(listen) == 0 {
		listen = listFlag{"127.0.0.1:39999"}
	}

	out := &printer{w: bufio.NewWriter(os.Stdout), json: *jsonOut}
	srv := &logsock.Server{
		Handler:    out.record,
		Order:      order,
		MaxFrame:   *maxFrame,
		CodePoints: *codePoints,
		ConnClosed: func(info logsock.ConnInfo, err error) {
			if err == nil || errors.Is(err, logsock.ErrServerClosed) {
				log.Printf("conn %d (pid %d) closed after %d frames", info.ID, info.Pid, info.Frames)
				return
			}
			log.Printf("conn %d (pid %d) closed after %d frames: %v", info.ID, info.Pid, info.Frames, err)
		},
	}

	var listeners []net.Listener
	for _, a := range listen {
		network, address, err := netaddr.Parse(a)
		if err != nil {
			log.Fatal(err)
		}
		l, err := net.Listen(network, address)
		if err != nil {
			log.Fatal(err)
		}
		listeners = append(listeners, l)
		log.Printf("listening on %s", netaddr.Format(network, l.Addr().String()))
	}

	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, logsock.ErrServerClosed) {
				log.Fatal(err)
			}
		})
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	wg.Wait()
	out.flush()
}

// printer writes records to standard output; handlers of different
// connections call it concurrently.
type printer struct {
	mu   sync.Mutex // guards w and buf
	w    *bufio.Writer
	json bool
	buf  []byte
}

type jsonRecord struct {
	Time string `json:"time"`
	Conn uint64 `json:"conn"`
	Pid  int32  `json:"pid"`
	Msg  string `json:"msg"`
}

func (p *printer) record(rec *logsock.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := rec.Time.UTC().Format(time.RFC3339Nano)
	if p.json {
		b, err := json.Marshal(jsonRecord{Time: ts, Conn: rec.Conn, Pid: rec.Pid, Msg: string(rec.Msg)})
		if err != nil {
			log.Fatal(err)
		}
		p.w.Write(b)
		p.w.WriteByte('\n')
	} else {
		p.buf = fmt.Appendf(p.buf[:0], "%s conn=%d pid=%d ", ts, rec.Conn, rec.Pid)
		p.buf = appendText(p.buf, rec.Msg)
		p.w.Write(append(p.buf, '\n'))
	}
	// Flush each record: a log line should show up as it arrives.
	if err := p.w.Flush(); err != nil {
		log.Fatal(err)
	}
}

func (p *printer) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Flush()
}

// appendText appends msg as it is when it is printable UTF-8 on one line,
// and quoted otherwise, so that a record is always one line.
func appendText(dst, msg []byte) []byte {
	if utf8.Valid(msg) && strconv.CanBackquote(string(msg)) {
		return append(dst, msg...)
	}
	return strconv.AppendQuote(dst, string(msg))
}
