// Command client is the article's first program in Go: it connects to a
// collector, sends its pid as the handshake, and logs "current pid: N" once
// every interval.
//
//	go run ./cmd/logsockd &
//	go run ./examples/client -count 5
//
// Flags: -addr (default 127.0.0.1:39999; unix:///path for a Unix socket),
// -interval (default 1s), -count (default 0: forever), -order little|big.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "collector address: host:port, tcp://host:port or unix:///path")
	interval := flag.Duration("interval", time.Second, "time between messages")
	count := flag.Int("count", 0, "messages to send; 0 sends forever")
	var order logsock.ByteOrder
	flag.TextVar(&order, "order", logsock.LittleEndian, "byte order: little or big")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("client: ")

	network, address, err := netaddr.Parse(*addr)
	if err != nil {
		log.Fatal(err)
	}
	ls, err := logsock.Dial(network, address, &logsock.Config{Order: order})
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()

	msg := fmt.Sprintf("current pid: %d", os.Getpid())
	for i := 0; *count == 0 || i < *count; i++ {
		if i > 0 {
			time.Sleep(*interval)
		}
		if err := ls.Log(msg); err != nil {
			log.Print(err) // the next Log dials again
		}
	}
}
