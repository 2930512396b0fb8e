package logsock_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestDialSendsHandshake reads the raw stream: the pid of this process,
// at once on Dial, then frames of the configured byte order.
func TestDialSendsHandshake(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, order := range []logsock.ByteOrder{logsock.LittleEndian, logsock.BigEndian} {
			t.Run(network+"/"+order.String(), func(t *testing.T) {
				l := logsocktest.Listen(t, network)
				defer l.Close()
				ls := dial(t, network, l.Addr().String(), &logsock.Config{Order: order})
				c, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				pid, err := logsocktest.ReadPid(c, order)
				if err != nil || pid != int32(os.Getpid()) {
					t.Fatalf("handshake %d, %v; want %d", pid, err, os.Getpid())
				}
				if err := ls.Log("héllo"); err != nil {
					t.Fatal(err)
				}
				if _, err := ls.Write(nil); err != nil {
					t.Fatal(err)
				}
				want := logsock.AppendHandshake(nil, order, 6) // same layout as a header
				want = append(want, "héllo"...)
				want = logsock.AppendHandshake(want, order, 0)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("stream %q, %v; want %q", got, err, want)
				}
			})
		}
	}
}

// TestConcurrentFramesWhole: 16 goroutines log 10,000 frames each, of
// random sizes from 0 B to 64 KiB, on one LogSocket; the collector must see
// every frame whole and exactly once, each goroutine's in order; in direct
// and in batching mode.
func TestConcurrentFramesWhole(t *testing.T) {
	t.Parallel()
	// WriteTimeout a minute: a write that waits longer for room (under
	// load, beside parallel tests) ends the connection, and the frames
	// still in the old one's buffer are read beside the new one's: this
	// test is about tearing and order on one connection.
	for name, cfg := range map[string]*logsock.Config{
		"direct":   {WriteTimeout: time.Minute},
		"batching": {Batching: true, WriteTimeout: time.Minute},
		// Chunks of 32 KiB: the larger frames take chunks of their own,
		// and callers wait for room.
		"batching, 128 KiB": {Batching: true, BufferBytes: 128 << 10, WriteTimeout: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each mode has its collector and LogSocket
			testConcurrentFramesWhole(t, cfg)
		})
	}
}

func testConcurrentFramesWhole(t *testing.T, cfg *logsock.Config) {
	const goroutines, perGoroutine = 16, 10_000
	block := make([]byte, 128<<10) // message bodies are windows of this
	rand.NewChaCha8([32]byte{7}).Read(block)

	// Goroutine g draws its sizes from its own seed, so that the checker
	// can replay them: log-uniform from 0 to 65536 bytes.
	sizes := func(g int) func() int {
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		return func() int { return rng.IntN(1<<rng.IntN(17) + 1) }
	}
	// A message of 8 bytes or more is its goroutine, its sequence number
	// and a window of block chosen by both. A shorter one is zeros: those
	// are counted by size.
	encode := func(buf []byte, g, seq, size int) []byte {
		buf = buf[:size]
		if size < 8 {
			clear(buf)
			return buf
		}
		binary.LittleEndian.PutUint32(buf, uint32(g))
		binary.LittleEndian.PutUint32(buf[4:], uint32(seq))
		off := (g*7919 + seq*104729) % (len(block) - len(buf))
		copy(buf[8:], block[off:])
		return buf
	}

	// The checker's state; the Handler of the one connection is its only
	// user until the connection ends.
	type replay struct {
		size    func() int
		seq     int // the sequence number of the next numbered frame
		nextLen int
	}
	var (
		want     [goroutines]replay
		tiny     [8]int // short frames seen, by size
		tinyWant [8]int
		problems []string
		check    = make([]byte, 64<<10+8)
	)
	advance := func(r *replay) { // to the next frame of 8 bytes or more
		for ; r.seq < perGoroutine; r.seq++ {
			if r.nextLen = r.size(); r.nextLen >= 8 {
				return
			}
			tinyWant[r.nextLen]++
		}
	}
	for g := range want {
		want[g] = replay{size: sizes(g), seq: 0}
		advance(&want[g])
	}
	handler := func(rec *logsock.Record) {
		m := rec.Msg
		if len(m) < 8 {
			if bytes.Count(m, []byte{0}) != len(m) {
				problems = append(problems, "short frame not zeros")
			}
			tiny[len(m)]++
			return
		}
		g, seq := int(binary.LittleEndian.Uint32(m)), int(binary.LittleEndian.Uint32(m[4:]))
		if g >= goroutines {
			problems = append(problems, "frame from no goroutine")
			return
		}
		r := &want[g]
		switch {
		case seq != r.seq || len(m) != r.nextLen:
			problems = append(problems, fmt.Sprintf("goroutine %d: frame %d of %d bytes, want frame %d of %d bytes", g, seq, len(m), r.seq, r.nextLen))
		case !bytes.Equal(m, encode(check, g, seq, len(m))):
			problems = append(problems, fmt.Sprintf("goroutine %d: frame %d torn", g, seq))
		}
		r.seq++
		advance(r)
	}
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, localNetwork, &logsock.Server{Handler: handler, ConnClosed: sink.ConnClosed})
	ls := dial(t, localNetwork, addr, cfg)

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			size := sizes(g)
			buf := make([]byte, 64<<10+8)
			for seq := range perGoroutine {
				if _, err := ls.Write(encode(buf, g, seq, size())); err != nil {
					t.Errorf("goroutine %d frame %d: %v", g, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ls.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ends := sink.WaitEnds(t, 1); ends[0] != nil {
		t.Fatalf("connection ended with %v", ends[0])
	}
	if st := ls.Stats(); st.Connects != 1 {
		t.Fatalf("%d connections: the test needs one (Stats %+v)", st.Connects, st)
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	for g, r := range want {
		if r.seq != perGoroutine {
			t.Errorf("goroutine %d: frame %d of %d bytes never arrived", g, r.seq, r.nextLen)
		}
	}
	if tiny != tinyWant {
		t.Errorf("short frames by size %v, want %v", tiny, tinyWant)
	}
	st := ls.Stats()
	if st.Frames != goroutines*perGoroutine || st.Errors != 0 || st.Connects != 1 {
		t.Errorf("Stats %+v", st)
	}
	t.Logf("%d frames in %d writes", st.Frames, st.Writes)
}

// TestLogAllocs: no allocation a frame on the hot path, small or large.
func TestLogAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	addr := logsocktest.Serve(t, "tcp", &logsock.Server{})
	ls := dial(t, "tcp", addr, nil)
	big := bytes.Repeat([]byte("x"), 256<<10)
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"Log", func() error { return ls.Log("current pid: 12345") }},
		{"Write", func() error { _, err := ls.Write(big[:100]); return err }},
		{"Write 256KiB", func() error { _, err := ls.Write(big); return err }},
	} {
		if allocs := testing.AllocsPerRun(200, func() {
			if err := tc.f(); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("%s: %v allocations a frame, want 0", tc.name, allocs)
		}
	}
}

// TestFrameTooLarge: a message over the limit is refused whole, and the
// connection goes on.
func TestFrameTooLarge(t *testing.T) {
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, "tcp", sink.Server())
	ls := dial(t, "tcp", addr, &logsock.Config{MaxFrame: 10})
	if err := ls.Log("0123456789A"); !errors.Is(err, logsock.ErrFrameTooLarge) {
		t.Fatalf("11 bytes with limit 10: %v, want ErrFrameTooLarge", err)
	}
	if err := ls.Log("0123456789"); err != nil {
		t.Fatal(err)
	}
	recs := sink.WaitRecords(t, 1)
	if string(recs[0].Msg) != "0123456789" {
		t.Fatalf("record %q", recs[0].Msg)
	}
	if st := ls.Stats(); st.Frames != 1 || st.Errors != 1 || st.Bytes != 10 {
		t.Errorf("Stats %+v", st)
	}
}

// TestCloseIsFinal: Close is idempotent, later calls fail with ErrClosed,
// and nothing dials again.
func TestCloseIsFinal(t *testing.T) {
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, localNetwork, sink.Server())
	ls := dial(t, localNetwork, addr, nil)
	if err := ls.Log("before"); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ls.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ls.Log("after"); !errors.Is(err, logsock.ErrClosed) {
		t.Fatalf("Log after Close: %v, want ErrClosed", err)
	}
	if _, err := ls.Write([]byte("after")); !errors.Is(err, logsock.ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if ends := sink.WaitEnds(t, 1); ends[0] != nil {
		t.Fatalf("connection ended with %v", ends[0])
	}
	if st := ls.Stats(); st.Connects != 1 {
		t.Fatalf("%d connections: the test needs one (Stats %+v)", st.Connects, st)
	}
	if st := ls.Stats(); st.Connects != 1 || st.Frames != 1 {
		t.Errorf("Stats %+v: want 1 connection, 1 frame", st)
	}
}

// TestWriteTimeout: a collector that accepts and never reads holds no
// call past WriteTimeout, in either mode, under each Overflow policy. The
// client fills the stalled connection until a write times out; that
// connection is given up, and no other can be made (the collector stops
// accepting), so the frames are held until BufferBytes is full and the
// policy drops. Every drop is counted. Once the collector reads and
// accepts again, the frames accepted and not dropped arrive, in order:
// under Block and DropNewest every frame whose call returned nil, the
// earliest; under DropOldest those written before the stall, then the
// latest, as many as BufferBytes holds.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	const (
		timeout     = 200 * time.Millisecond
		slack       = 3 * time.Second // the scheduler's, on a busy machine
		bufferBytes = 64 << 10
		size        = 1 << 10 // each message: its number, then padding
		frameBytes  = logsock.HeaderLen + size
		capacity    = bufferBytes / frameBytes // the frames held at most
	)
	name := map[logsock.Overflow]string{logsock.Block: "Block", logsock.DropNewest: "DropNewest", logsock.DropOldest: "DropOldest"}
	for _, batching := range []bool{false, true} {
		for _, policy := range []logsock.Overflow{logsock.Block, logsock.DropNewest, logsock.DropOldest} {
			t.Run(fmt.Sprintf("batching=%v/%s", batching, name[policy]), func(t *testing.T) {
				t.Parallel()
				ownStacks(t) // the writer that waitForStack waits for is this test's
				col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeStall)
				ls := dial(t, localNetwork, col.Addr, &logsock.Config{Batching: batching, Overflow: policy,
					WriteTimeout: timeout, BufferBytes: bufferBytes, CloseTimeout: timeout,
					MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
				col.WaitConns(t, 1)
				col.StopAccepting() // reconnects fail: the frames are held

				var (
					calls    int   // call i writes message i
					accepted []int // the calls that returned nil
					errs     int   // those that returned ErrBufferFull
					slowest  time.Duration
				)
				msg := bytes.Repeat([]byte("."), size)
				logNext := func() error {
					strconv.AppendInt(msg[:0], int64(1e8+calls), 10) // 9 digits
					start := time.Now()
					_, err := ls.Write(msg)
					took := time.Since(start)
					slowest = max(slowest, took)
					switch {
					case err == nil:
						accepted = append(accepted, calls)
					case !errors.Is(err, logsock.ErrBufferFull):
						t.Fatalf("call %d: %v", calls, err)
					case policy == logsock.Block && took < timeout:
						t.Fatalf("call %d: Block dropped its frame after %v, WriteTimeout %v", calls, took, timeout)
					default:
						errs++
					}
					calls++
					return err
				}

				// Until the stalled connection is full and a write on it
				// has timed out. In batching mode, at the writer's pace
				// (Sync), so that the buffer does not fill before the
				// connection does.
				for began := time.Now(); ls.Stats().Outage == 0; {
					if time.Since(began) > 10*time.Second {
						t.Fatalf("after %d calls in %v, no outage: Stats %+v", calls, time.Since(began), ls.Stats())
					}
					logNext()
					if batching && calls%(capacity/4) == 0 {
						ls.Sync()
					}
				}
				if batching {
					// The writer waits out the backoff: its write on the
					// stalled connection has timed out, and the frames it did
					// not write are held again. From now on no frame is being
					// written: DropOldest always finds held frames to drop.
					waitForStack(t, "(*batcher).writeBatch", "(*link).wait")
				}
				// Then until the policy has dropped: 2 frames by Block
				// (each waits WriteTimeout), 20 by DropNewest, twice the
				// buffer's frames by DropOldest.
				held, errs0, dropped0 := calls, errs, ls.Stats().Dropped
				for prev := error(nil); ; {
					err := logNext()
					switch {
					case policy == logsock.DropOldest && err != nil:
						t.Fatalf("call %d: DropOldest returned %v with held frames to drop", calls-1, err)
					case prev != nil && err == nil:
						// Nothing is written while the collector is
						// unreachable: once full, the buffer stays full.
						t.Fatalf("call %d dropped its frame, call %d did not", calls-2, calls-1)
					}
					prev = err
					if policy == logsock.Block && errs-errs0 == 2 || policy == logsock.DropNewest && errs-errs0 == 20 ||
						policy == logsock.DropOldest && ls.Stats().Dropped-dropped0 >= 2*capacity {
						break
					}
					if calls-held > 100*capacity {
						t.Fatalf("%d calls with the collector unreachable, Stats %+v", calls-held, ls.Stats())
					}
				}

				if slowest > timeout+slack {
					t.Errorf("a call took %v, WriteTimeout %v", slowest, timeout)
				}
				// The buffer is full when a policy drops: a chunk in use
				// counts whole under Block, in batching mode.
				unused := frameBytes
				if batching && policy == logsock.Block {
					unused += bufferBytes / 4
				}
				st := ls.Stats()
				switch {
				case st.Outage == 0:
					t.Errorf("Stats %+v: no outage", st)
				case st.HeldBytes > bufferBytes || st.HeldBytes+unused <= bufferBytes:
					t.Errorf("Stats %+v: want the buffer full, within %d bytes", st, bufferBytes)
				case policy != logsock.DropOldest && st.Dropped != uint64(errs):
					t.Errorf("Stats %+v: %d calls returned ErrBufferFull", st, errs)
				case policy == logsock.DropOldest && st.Dropped < 2*capacity+uint64(errs):
					t.Errorf("Stats %+v: %d calls returned ErrBufferFull, and at least %d frames were dropped for new ones",
						st, errs, 2*capacity)
				}

				col.Resume()
				col.Start(t)
				flush(t, ls)
				if err := ls.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if st2 := ls.Stats(); st2.Dropped != st.Dropped {
					t.Errorf("Stats %+v after the collector's return: want the %d drops before, no more", st2, st.Dropped)
				}
				col.WaitConnEnd(t, 1) // the stalled connection, read to its end
				col.WaitConnEnd(t, 2) // the one that Flush made, closed
				recs := col.WaitRecords(t, 0)
				slices.SortStableFunc(recs, func(a, b logsock.Record) int { return cmp.Compare(a.Conn, b.Conn) })
				var got []int   // the calls delivered
				var later []int // those delivered after the stall, from the buffer
				for _, r := range recs {
					i, err := strconv.Atoi(string(r.Msg[:9]))
					if i -= 1e8; err != nil || len(r.Msg) != size || i < 0 || i >= calls {
						t.Fatalf("record %.20q... of %d bytes: not a message of the test", r.Msg, len(r.Msg))
					}
					got = append(got, i)
					if r.Conn > 1 {
						later = append(later, i)
					}
				}
				// Every frame is delivered, or counted as dropped.
				if len(got) != calls-int(st.Dropped) {
					t.Errorf("%d frames delivered of %d, %d counted as dropped", len(got), calls, st.Dropped)
				}
				if policy != logsock.DropOldest {
					if !slices.Equal(got, accepted) {
						i := 0 // the index where they part
						for i < min(len(got), len(accepted)) && got[i] == accepted[i] {
							i++
						}
						t.Errorf("delivered %d frames, want the %d accepted, in order; at index %d, %v, want %v",
							len(got), len(accepted), i, got[i:min(i+5, len(got))], accepted[i:min(i+5, len(accepted))])
					}
					return
				}
				// DropOldest: what was written before the stall, in order,
				// then the latest frames, as many as the buffer holds.
				if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Errorf("delivered out of order: %v", got)
				}
				var want []int
				for i := calls - st.Held; i < calls; i++ {
					want = append(want, i)
				}
				if !slices.Equal(later, want) {
					t.Errorf("delivered from the buffer %v,\nwant the latest %d frames: %v", later, st.Held, want)
				}
			})
		}
	}
}

// TestNewIsLazy: New does not dial; while the collector is down, frames
// are held (Log returns nil); once it is up, Flush delivers them all, in
// order, on one connection opened by this process.
func TestNewIsLazy(t *testing.T) {
	col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode)
	ls, err := logsock.New(localNetwork, col.Addr, &logsock.Config{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	for i := range 3 {
		if err := ls.Log(fmt.Sprint("down ", i)); err != nil {
			t.Fatalf("Log with no collector: %v, want nil (held)", err)
		}
	}
	if st := ls.Stats(); st.Held != 3 || st.Connects != 0 {
		t.Fatalf("Stats %+v: want 3 held, no connection", st)
	}
	col.Start(t)
	if err := ls.Log("up"); err != nil {
		t.Fatal(err)
	}
	flush(t, ls)
	recs := col.WaitRecords(t, 4)
	for i, want := range []string{"down 0", "down 1", "down 2", "up"} {
		if string(recs[i].Msg) != want || recs[i].Pid != int32(os.Getpid()) || recs[i].Conn != recs[0].Conn {
			t.Errorf("record %d = %+v, want %q", i, recs[i], want)
		}
	}
	if st := ls.Stats(); st.Connects != 1 || st.Frames != 4 || st.Held != 0 || st.Outage <= 0 || st.Errors != 0 {
		t.Errorf("Stats %+v", st)
	}
}

// TestNewRejectsBadInput: New checks the network, the address and the
// Config, and each error names what is wrong: the field, or the form the
// address should have (issue 18: New("tcp", "tcp://127.0.0.1:1") succeeded,
// and the error came at Close, 5 s later).
func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		network, address string
		cfg              *logsock.Config
		want             string // in the error
	}{
		{"udp", "127.0.0.1:1", nil, `network "udp"`},
		{"unixgram", "/tmp/x", nil, `network "unixgram"`},
		{"tcp", "tcp://127.0.0.1:1", nil, "want host:port, without tcp://"},
		{"unix", "unix:///tmp/x", nil, "want a path, without unix://"},
		{"tcp", "::::", nil, "want host:port"},
		{"tcp", "127.0.0.1", nil, "want host:port"},
		{"tcp", "127.0.0.1:0", nil, `port "0"`},
		{"tcp", "127.0.0.1:99999", nil, `port "99999"`},
		{"tcp", "", nil, "empty"},
		{"unix", "", nil, "empty"},
		{"tcp", "127.0.0.1:1", &logsock.Config{MaxFrame: -1}, "Config.MaxFrame -1"},
		{"tcp", "127.0.0.1:1", &logsock.Config{Order: 7}, "Config.Order 7"},
		{"tcp", "127.0.0.1:1", &logsock.Config{Overflow: 9}, "Config.Overflow 9"},
		{"tcp", "127.0.0.1:1", &logsock.Config{BufferBytes: -1}, "Config.BufferBytes -1"},
		{"tcp", "127.0.0.1:1", &logsock.Config{WriteTimeout: -time.Second}, "Config.WriteTimeout -1s: negative"},
		{"tcp", "127.0.0.1:1", &logsock.Config{DialTimeout: -time.Second}, "Config.DialTimeout -1s: negative"},
		{"tcp", "127.0.0.1:1", &logsock.Config{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "Config.MaxBackoff 1ms: below MinBackoff 1s"},
		{"tcp", "127.0.0.1:1", &logsock.Config{FlushDelay: time.Second}, "Config.FlushDelay 1s: batching mode's"},
	} {
		_, err := logsock.New(tc.network, tc.address, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q, %+v): %v, want an error with %q", tc.network, tc.address, tc.cfg, err, tc.want)
		}
	}
	if _, err := logsock.NewSyslog("tcp", "127.0.0.1:1", &logsock.Config{Order: logsock.BigEndian}); err == nil ||
		!strings.Contains(err.Error(), "Config.Order big") {
		t.Errorf("NewSyslog with a byte order: %v, want an error naming Config.Order", err)
	}
	// Defaults follow what is set: a MinBackoff above the default
	// MaxBackoff raises it.
	for _, cfg := range []*logsock.Config{
		{MinBackoff: 10 * time.Second},
		{Batching: true, FlushDelay: time.Second},
	} {
		ls, err := logsock.New("tcp", "127.0.0.1:1", cfg)
		if err != nil {
			t.Errorf("New with %+v: %v", cfg, err)
			continue
		}
		ls.Close()
	}
	var oe *logsock.OpError
	if _, err := logsock.Dial("unix", logsocktest.SocketPath(t), nil); !errors.As(err, &oe) || oe.Op != "dial" || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Dial to nothing: %v, want a dial *OpError wrapping ENOENT", err)
	}
}

// TestParseAddress: the URL form of the programs' command lines, and the
// pair New takes.
func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, network, address, err string
	}{
		{"127.0.0.1:39999", "tcp", "127.0.0.1:39999", ""},
		{"tcp://127.0.0.1:39999", "tcp", "127.0.0.1:39999", ""},
		{"tcp6://[::1]:9", "tcp6", "[::1]:9", ""},
		{"tcp4://:0", "tcp4", ":0", ""}, // a listener's
		{"localhost:http", "tcp", "localhost:http", ""},
		{"unix:///run/logsock.sock", "unix", "/run/logsock.sock", ""},
		{"unix://@abstract", "unix", "@abstract", ""},
		{"unix://", "", "", "want unix:///path"},
		{"udp://127.0.0.1:9", "", "", `network "udp"`},
		{"tcp://127.0.0.1", "", "", "want host:port"},
		{"127.0.0.1", "", "", "want host:port"},
		{"tcp://tcp://127.0.0.1:9", "", "", "is a URL"},
		{"", "", "", "empty"},
	} {
		network, address, err := logsock.ParseAddress(tc.in)
		switch {
		case tc.err == "" && (err != nil || network != tc.network || address != tc.address):
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tc.in, network, address, err, tc.network, tc.address)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want an error with %q", tc.in, network, address, err, tc.err)
		}
	}
}

// TestLoggers: log.Logger and slog write one record a call, one frame each.
func TestLoggers(t *testing.T) {
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, "tcp", sink.Server())
	ls := dial(t, "tcp", addr, nil)
	log.New(ls, "", 0).Print("two\nlines")
	logger := slog.New(slog.NewJSONHandler(ls, nil))
	logger.Info("started", "pid", os.Getpid())
	logger.Warn("disk", "free", "10%")
	recs := sink.WaitRecords(t, 3)
	if string(recs[0].Msg) != "two\nlines\n" {
		t.Errorf("log record %q", recs[0].Msg)
	}
	for _, r := range recs[1:] {
		var v map[string]any
		if err := json.Unmarshal(r.Msg, &v); err != nil || v["msg"] == nil {
			t.Errorf("slog record %q: %v", r.Msg, err)
		}
	}
	if !strings.Contains(string(recs[2].Msg), `"free":"10%"`) {
		t.Errorf("slog record %q", recs[2].Msg)
	}
}
