// Command client is the article's first program in Go: it sends its pid
// as the handshake, and logs "current pid: N" once every interval. It can
// start before the collector: its messages wait until the collector is up.
//
//	go run ./cmd/logsockd &
//	go run ./examples/client -count 5
//
// It does not read its standard input; cmd/logsock-cat sends lines from a
// shell. Exit status: 0 once every message was delivered; 1 if some could
// not be, within 5 s of the last; 2 for a bad command line.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/logsock/logsock"
)

const usage = `usage: client [flags]

client logs "current pid: N" to a logsock collector once every -interval. It can
start before the collector: the messages wait, up to 4 MiB, until it is up.

example:
  client -addr unix:///tmp/log.sock -count 5

flags:
`

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "collector address: host:port, tcp://host:port or unix:///path")
	interval := flag.Duration("interval", time.Second, "time between messages")
	count := flag.Int("count", 0, "messages to send; 0 sends forever")
	var order logsock.ByteOrder
	flag.TextVar(&order, "order", logsock.LittleEndian, "byte order: little or big")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("client: ")
	if flag.NArg() > 0 {
		log.Printf("unexpected argument %q: client takes flags only", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	network, address, err := logsock.ParseAddress(*addr)
	var ls *logsock.LogSocket
	if err == nil {
		// New, not Dial: it connects at the first message, so the
		// collector may start later.
		ls, err = logsock.New(network, address, &logsock.Config{Order: order})
	}
	if err != nil {
		log.Printf("-addr %s: %v", *addr, err)
		os.Exit(2)
	}

	msg := fmt.Sprintf("current pid: %d", os.Getpid())
	holding := false
	for i := 0; *count == 0 || i < *count; i++ {
		if i > 0 {
			time.Sleep(*interval)
		}
		if err := ls.Log(msg); err != nil {
			log.Print(err) // the buffer is full: this message is dropped
		}
		// Log returns nil for a message that it holds: say why nothing
		// arrives, once an outage.
		if held := ls.Stats().Held > 0; held != holding {
			holding = held
			if held {
				log.Printf("cannot reach the collector at %s: holding the messages until it is up", *addr)
			}
		}
	}
	if err := ls.Close(); err != nil { // delivers what is held, for up to 5 s
		log.Fatal(err)
	}
}
