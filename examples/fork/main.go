// Command fork is the article's first two experiments in Go. The parent
// connects to a collector, then starts a copy of itself as its child, which
// inherits the connection: Go cannot fork without exec, so LogSocket.Start
// and logsock.FromEnv stand in for os.fork. Parent and child each log
// "current pid: N", with their own pid, -count times.
//
// Run a collector in one terminal and this program in another:
//
//	go run ./cmd/logsockd
//	go run ./examples/fork -count 0
//
// Experiment 1: the collector prints both pids' messages on one connection
// whose handshake named only the parent: every line says conn=1 pid=P,
// and the messages alternate between "current pid: P" and "current pid: C".
//
// Experiment 2: stop the collector (Ctrl-C) and start it again. Parent and
// child each reconnect on their own, each with a handshake of its own pid,
// so the collector now shows two connections: conn=1 pid=P carrying
// "current pid: P" and conn=2 pid=C carrying "current pid: C". Unlike the
// article's client, neither drops what it logs while the collector is
// down: those messages are held, and sent on the new connection.
//
// Flags: -addr (default 127.0.0.1:39999; unix:///path for a Unix socket),
// -interval (default 1s), -count (messages per process, default 10; 0 logs
// until interrupted), -order little|big (the child takes the parent's).
// The parent exits when both are done; SIGINT or SIGTERM stops both.
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
	"syscall"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:39999", "collector address: host:port, tcp://host:port or unix:///path")
	interval := flag.Duration("interval", time.Second, "time between messages")
	count := flag.Int("count", 10, "messages to send from each process; 0 sends until interrupted")
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
		log.SetPrefix(fmt.Sprintf("fork: child %d: ", os.Getpid()))
		err = child(ctx, ls, *count, *interval)
	case errors.Is(err, logsock.ErrNotInherited):
		log.SetPrefix(fmt.Sprintf("fork: parent %d: ", os.Getpid()))
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
	werr := cmd.Wait()
	if werr != nil {
		werr = fmt.Errorf("child: %w", werr)
	}
	return errors.Join(werr, ls.Close())
}

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
