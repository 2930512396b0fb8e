package logsock_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// BenchmarkServerIngest: a Server reads 100-byte frames that one client
// writes as fast as it can, over TCP and over a Unix socket (where each
// read also brings its writer's pid, SO_PASSCRED, on Linux).
func BenchmarkServerIngest(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 100)
	var chunk []byte
	for range 64 << 10 / (len(msg) + logsock.HeaderLen) {
		chunk = logsock.AppendFrame(chunk, logsock.LittleEndian, msg)
	}
	frames := len(chunk) / (len(msg) + logsock.HeaderLen)
	for _, network := range []string{"tcp", "unix"} {
		b.Run(network, func(b *testing.B) {
			seen, done := 0, make(chan struct{})
			srv := &logsock.Server{Handler: func(*logsock.Record) {
				if seen++; seen == b.N {
					close(done)
				}
			}}
			addr := logsocktest.Serve(b, network, srv)
			c := logsocktest.RawConn(b, network, addr, logsock.AppendHandshake(nil, logsock.LittleEndian, 1))
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			go func() {
				for sent := 0; sent < b.N; sent += frames {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			<-done
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
			b.StopTimer()
			c.Close()
		})
	}
}
