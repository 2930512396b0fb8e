// Command collector is the shortest useful embedding of a logsock.Server:
// it accepts logsock streams on one TCP address, prints one line a record,
// and drains its connections on SIGINT or SIGTERM. To run a collector,
// run cmd/logsockd, the daemon built the same way (outputs, forwarding,
// Unix sockets, log rotation); copy this one to collect into a program of
// your own.
//
//	go run ./examples/collector -addr 127.0.0.1:39999
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "TCP address to listen on")
	flag.Parse()

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
