package logsock

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatchingReleasesIdleMemory: the batch buffers and chunks, kept while busy, are
// given back once the writer has had nothing to do for idleRelease.
func TestBatchingReleasesIdleMemory(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	ls, err := Dial("tcp", l.Addr().String(), &Config{Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 1000)
	for range 4000 { // 4 MB: batches of hundreds of KiB
		ls.Write(msg)
	}
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, q := ls.s.(*batcher), ls.q
	held := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := cap(q.held.buf) + cap(b.b.spare) + len(q.free)*q.chunkLen
		if q.cur.Load() != nil {
			n += q.chunkLen
		}
		return n
	}
	if held() == 0 {
		t.Fatal("no batch memory kept after the burst")
	}
	start := time.Now()
	for held() != 0 {
		if time.Since(start) > idleRelease+10*time.Second {
			t.Fatalf("%d bytes still kept %v after the burst", held(), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond) // the release is a timer's: nothing to wait on
	}
	ls.Close()
	<-done
}

// TestDropOldestWithBatchInFlight: when the room is taken by the batch
// being written, there is nothing older to drop: the new frame is dropped.
func TestDropOldestWithBatchInFlight(t *testing.T) {
	q := newQueue(&Config{BufferBytes: 100, Overflow: DropOldest}, framing{}, 0, 0)
	q.held.push(make([]byte, 10), meta{})
	var b batch
	q.take(&b)      // as the writer does: 14 bytes in flight
	q.reserved = 90 // say more of it
	if err := q.hold(make([]byte, 20), meta{}, time.Now(), nil); err != ErrBufferFull {
		t.Fatalf("hold: %v, want ErrBufferFull", err)
	}
	if n := q.dropped.Load(); n != 1 {
		t.Errorf("dropped %d: want the new frame counted", n)
	}
}

// BenchmarkChunkAppend measures the lock-free append alone, no socket: 100 B
// frames into 64 KiB chunks, from 1 and from 8 goroutines. On 2 cores the
// 8 goroutines pay for the chunk's state word and its bytes moving between
// the cores' caches at every frame: the floor under BenchmarkBatchingGoroutines.
func BenchmarkChunkAppend(b *testing.B) {
	msg := make([]byte, 100)
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("%dg", g), func(b *testing.B) {
			var cur atomic.Pointer[chunk]
			var mu sync.Mutex
			cur.Store(&chunk{buf: make([]byte, chunkMax)})
			b.ResetTimer()
			var wg sync.WaitGroup
			for range g {
				wg.Go(func() {
					for range b.N / g {
						for {
							k := cur.Load()
							if _, ok := k.tryAppend(framing{}, msg, meta{}); ok {
								break
							}
							mu.Lock()
							if cur.Load() == k { // full: seal it, and start it again
								k.seal()
								k.state.Store(0)
							}
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkHoldDropOldestFull: a frame in, the oldest out, in a queue
// kept full: what a LogSocket with DropOldest does a Log while the
// collector is away. Its cost must not grow with BufferBytes.
func BenchmarkHoldDropOldestFull(b *testing.B) {
	msg := make([]byte, 100)
	for _, size := range []int{64 << 10, 4 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			cfg, _ := (&Config{BufferBytes: size, Overflow: DropOldest}).withDefaults()
			q := newQueue(&cfg, framing{}, 0, 0)
			for q.roomFor(framing{}.size(len(msg))) {
				q.held.push(msg, meta{})
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := q.hold(msg, meta{}, time.Time{}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
