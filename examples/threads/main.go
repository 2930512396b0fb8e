// Command threads is the article's third experiment in Go: a thread that
// logs, started before the fork, lives on in the parent only. The parent
// connects to a collector, starts a goroutine that logs "current pid: P",
// then starts a copy of itself as its child, which inherits the connection
// (LogSocket.Start and logsock.FromEnv stand in for os.fork). Then the
// main goroutines of both log "current pid: N", with their own pid.
//
// Run a collector in one terminal and this program in another:
//
//	go run ./cmd/logsockd
//	go run ./examples/threads
//
// The collector shows one connection, conn=1 pid=P, and on it the parent's
// "current pid: P" twice as often as the child's "current pid: C": the
// parent logs from two goroutines, the child from its main goroutine
// only. A child starts with none of its parent's goroutines, as a forked
// process starts with none of its parent's threads but the one that called
// fork. (In the article only the thread logs, so the server never hears
// from the child; here the main goroutines log too, to show the difference.)
//
// Flags: -addr (default 127.0.0.1:39999; unix:///path for a Unix socket),
// -interval (default 1s), -count (messages per goroutine, default 10; 0
// logs until interrupted), -order little|big (the child takes the
// parent's). The parent exits when both are done; SIGINT or SIGTERM stops
// both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "collector address: host:port, tcp://host:port or unix:///path")
	interval := flag.Duration("interval", time.Second, "time between messages")
	count := flag.Int("count", 10, "messages to send from each logging goroutine; 0 sends until interrupted")
	var order logsock.ByteOrder
	flag.TextVar(&order, "order", logsock.LittleEndian, "byte order: little or big")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A process started by Start finds the connection in its environment:
	// that is what makes it the child.
	ls, err := logsock.FromEnv(nil)
	switch {
	case err == nil:
		log.SetPrefix(fmt.Sprintf("threads: child %d: ", os.Getpid()))
		err = child(ctx, ls, *count, *interval)
	case errors.Is(err, logsock.ErrNotInherited):
		log.SetPrefix(fmt.Sprintf("threads: parent %d: ", os.Getpid()))
		err = parent(ctx, *addr, order, *count, *interval)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func parent(ctx context.Context, addr string, order logsock.ByteOrder, count int, interval time.Duration) error {
	network, address, err := netaddr.Parse(addr)
	if err != nil {
		return err
	}
	ls, err := logsock.Dial(network, address, &logsock.Config{Order: order})
	if err != nil {
		return err
	}
	defer ls.Close()

	// The article's logging thread, started before the fork. An early
	// return stops it, and waits for it before ls.Close.
	gctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { logEvery(gctx, ls, count, interval) })

	// os.Executable, not os.Args[0]: the same binary whatever PATH and the
	// working directory say.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := ls.Start(cmd); err != nil {
		return err
	}
	log.Printf("started child %d", cmd.Process.Pid)
	// A signal from the terminal reaches both processes; one sent to the
	// parent alone is passed on, so that the child does not log forever.
	defer context.AfterFunc(ctx, func() { cmd.Process.Signal(syscall.SIGTERM) })()

	logEvery(ctx, ls, count, interval)
	wg.Wait()
	werr := cmd.Wait()
	if werr != nil {
		werr = fmt.Errorf("child: %w", werr)
	}
	return errors.Join(werr, ls.Close())
}

// child logs from its main goroutine only: it has no copy of the parent's
// logging goroutine.
func child(ctx context.Context, ls *logsock.LogSocket, count int, interval time.Duration) error {
	logEvery(ctx, ls, count, interval)
	return ls.Close()
}

// logEvery logs "current pid: N" count times (forever if count is 0), one
// interval apart, until ctx is done.
func logEvery(ctx context.Context, ls *logsock.LogSocket, count int, interval time.Duration) {
	msg := fmt.Sprintf("current pid: %d", os.Getpid())
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := ls.Log(msg); err != nil {
			log.Print(err) // the LogSocket reconnects during the next call
		}
		t.Reset(interval)
	}
}
