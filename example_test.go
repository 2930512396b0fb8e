package logsock_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/logsock/logsock"
)

// A collector and a client in one program: the client logs two messages
// and closes; the collector prints each record, then the connection's end.
func Example() {
	done := make(chan struct{})
	srv := &logsock.Server{
		Handler: func(rec *logsock.Record) {
			fmt.Printf("conn %d: %s\n", rec.Conn, rec.Msg)
		},
		ConnClosed: func(info logsock.ConnInfo, err error) {
			fmt.Printf("conn %d closed after %d frames: %v\n", info.ID, info.Frames, err)
			close(done)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	ls, err := logsock.Dial("tcp", l.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	ls.Log("current pid: 17120")
	fmt.Fprintf(ls, "%d bytes in one frame", 18) // each Write is one frame
	ls.Close()
	<-done
	// Output:
	// conn 1: current pid: 17120
	// conn 1: 18 bytes in one frame
	// conn 1 closed after 2 frames: <nil>
}

func ExampleDecoder() {
	stream := logsock.AppendHandshake(nil, logsock.LittleEndian, 17120)
	stream, _ = logsock.AppendFrame(stream, logsock.LittleEndian, []byte("current pid: 17120"))
	stream, _ = logsock.AppendFrame(stream, logsock.LittleEndian, []byte("로그"))

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
