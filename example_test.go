package logsock_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/logsock/logsock"
)

// A program logs to a collector: New connects when the first message is
// sent (and holds the messages while the collector is down), each Log or
// Write is one frame, and Close delivers what is held before it returns.
// (The collector here prints each record; in production it is logsockd.)
func Example() {
	addr, wait := printingCollector()

	ls, err := logsock.New("tcp", addr, nil)
	if err != nil {
		log.Fatal(err) // a bad address or Config
	}
	ls.Log("started")
	fmt.Fprintf(ls, "%d bytes in one frame", 18)
	if err := ls.Close(); err != nil {
		log.Fatal(err) // what could not be delivered
	}

	wait()
	// Output:
	// conn 1: started
	// conn 1: 18 bytes in one frame
	// conn 1 closed after 2 frames
}

// printingCollector starts a Server that prints each record and the end of
// its connection, and returns its address and a function that waits for
// that end.
func printingCollector() (addr string, wait func()) {
	done := make(chan struct{})
	srv := &logsock.Server{
		Handler: func(rec *logsock.Record) {
			fmt.Printf("conn %d: %s\n", rec.Conn, rec.Msg)
		},
		ConnClosed: func(info logsock.ConnInfo, err error) {
			fmt.Printf("conn %d closed after %d frames\n", info.Conn, info.Frames)
			close(done)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() {
		<-done
		srv.Close() // every record is in: no drain (Shutdown's waits a quarter of a second for the idle client)
	}
}

func ExampleDecoder() {
	stream := logsock.AppendHandshake(nil, logsock.LittleEndian, 17120)
	stream = logsock.AppendFrame(stream, logsock.LittleEndian, []byte("current pid: 17120"))
	stream = logsock.AppendFrame(stream, logsock.LittleEndian, []byte("로그"))

	d := logsock.NewDecoder(bytes.NewReader(stream), nil)
	pid, err := d.Handshake()
	if err != nil {
		log.Fatal(err)
	}
	for {
		msg, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", pid, msg)
	}
	// Output:
	// 17120: current pid: 17120
	// 17120: 로그
}

// The article's Python client counts code points, not bytes.
func ExampleDecoderConfig_codePoints() {
	stream := append([]byte{2, 0, 0, 0}, "로그"...) // len("로그") == 2 in Python
	d := logsock.NewDecoder(bytes.NewReader(stream), &logsock.DecoderConfig{CodePoints: true})
	msg, err := d.Next()
	fmt.Printf("%q %v\n", msg, err)
	// Output:
	// "로그" <nil>
}

// collect starts a Server on a loopback port that prints each record's
// message, quoted, and returns its address and a function that waits until
// n records have come (or says, after 10 s, how many did), then closes
// it.
func collect(n int) (addr string, wait func()) {
	got := make(chan struct{}, n)
	srv := &logsock.Server{Handler: func(rec *logsock.Record) {
		fmt.Printf("%q\n", rec.Msg)
		got <- struct{}{}
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() {
		timeout := time.After(10 * time.Second)
		for i := range n {
			select {
			case <-got:
			case <-timeout:
				fmt.Printf("%d of %d records after 10 s\n", i, n)
				srv.Close()
				return
			}
		}
		srv.Close() // every record is in: no drain (Shutdown's waits a quarter of a second for the idle client)
	}
}

// A LogSocket is an io.Writer whose every Write is one frame: a slog
// handler writes each record in one call, so each record is one frame,
// with the newline the handler ends it with. A record longer than
// Config.MaxFrame is refused, and slog drops the error: count such losses
// with Stats().Errors, or keep records short.
func Example_slog() {
	addr, wait := collect(2)
	ls, err := logsock.New("tcp", addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	logger := slog.New(slog.NewTextHandler(ls, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for the Output below
			}
			return a
		},
	}))
	logger.Info("started", "pid", 17120)
	logger.Warn("disk almost full", "free", "2%")
	wait()
	// Output:
	// "level=INFO msg=started pid=17120\n"
	// "level=WARN msg=\"disk almost full\" free=2%\n"
}

// A log.Logger writes each message in one call too.
func Example_logLogger() {
	addr, wait := collect(1)
	ls, err := logsock.New("tcp", addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	logger := log.New(ls, "worker: ", 0)
	logger.Printf("job %d done", 7)
	wait()
	// Output:
	// "worker: job 7 done\n"
}

// A LineWriter makes a frame of each line, for writers that write bytes
// as they come: an exec.Cmd's output, a bufio.Writer, a copy of a pipe.
func ExampleLineWriter() {
	addr, wait := collect(3)
	ls, err := logsock.New("tcp", addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	lw := logsock.NewLineWriter(ls)
	io.WriteString(lw, "line 1\nline 2\npart") // cmd.Stdout = lw writes like this
	io.WriteString(lw, "ial line\n")
	wait()
	// Output:
	// "line 1"
	// "line 2"
	// "partial line"
}

// A collector: records of any number of connections, each with the pid
// of its connection's handshake.
func ExampleServer() {
	done := make(chan struct{})
	srv := &logsock.Server{
		Handler: func(rec *logsock.Record) {
			fmt.Printf("pid %d: %s\n", rec.Pid, rec.Msg)
		},
		ConnClosed: func(info logsock.ConnInfo, err error) { close(done) },
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	// A client of another language: the handshake, then a frame.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	stream := logsock.AppendHandshake(nil, logsock.LittleEndian, 4242)
	stream = logsock.AppendFrame(stream, logsock.LittleEndian, []byte("hello from a raw socket"))
	c.Write(stream)
	c.Close()
	<-done
	// Output:
	// pid 4242: hello from a raw socket
}

// A parent hands its connection to a child it starts; the child, the same
// program started again here, adopts it. The collector sees the child's
// frames on the parent's connection, as after a fork.
func ExampleLogSocket_Start() {
	if os.Getenv("LOGSOCK_NETWORK") != "" { // the child: Start set the variables
		ls, err := logsock.FromEnv(nil)
		if err != nil {
			log.Fatal(err)
		}
		defer ls.Close()
		ls.Log("from the child")
		return
	}
	ls, err := logsock.Dial("tcp", "127.0.0.1:39999", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Close()
	cmd := exec.Command(os.Args[0]) // the child: this program again
	if err := ls.Start(cmd); err != nil {
		log.Fatal(err)
	}
	ls.Log("from the parent")
	cmd.Wait()
}
