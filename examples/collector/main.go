// Command collector is the shortest useful embedding of a logsock.Server:
// it accepts logsock streams on one TCP address, prints one line a record,
// and drains its connections on SIGINT or SIGTERM. To run a collector,
// run cmd/logsockd, the daemon built the same way (outputs, forwarding,
// Unix sockets, log rotation); copy this one to collect into a program of
// your own.
//
//	go run ./examples/collector -addr 127.0.0.1:39999
//
// Exit status: 0 after SIGINT or SIGTERM, 1 if it cannot listen, 2 for a
// bad command line.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock"
)

const usage = `usage: collector [flags]

collector accepts logsock streams on a TCP address and prints one line a record,
until SIGINT or SIGTERM. cmd/logsockd is the collector to run; this one is the
shortest embedding of a logsock.Server, to copy.

example:
  collector -addr 127.0.0.1:39999

flags:
`

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "TCP address to listen on")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("collector: ")
	if flag.NArg() > 0 {
		log.Printf("unexpected argument %q: collector takes flags only", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	// Handlers of different connections run concurrently, hence the lock.
	// One write a record keeps the example short; cmd/logsockd formats
	// into large buffers, which is many times faster.
	var mu sync.Mutex
	srv := &logsock.Server{Handler: func(rec *logsock.Record) {
		mu.Lock()
		defer mu.Unlock()
		// rec.Msg is valid only during the call: print it, do not keep it.
		fmt.Printf("%s conn=%d pid=%d from=%s %q\n",
			rec.Time.UTC().Format(time.RFC3339Nano), rec.Conn, rec.Pid, rec.Remote, rec.Msg)
	}}

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Fatal(err)
	}
	// Shutdown stops accepting and returns once every record that has
	// arrived has been handled, or at its deadline.
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Print(err)
	}
}
