package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

const (
	decoderLogsock = "logsock Decoder"
	decoderRaw     = "raw bufio+ReadFull"
)

type decodeResult struct {
	name   string
	size   int
	rate   float64 // median frames/s
	allocs float64 // allocations a frame, after the first pass
}

// A decoder returns a function that decodes the whole of stream once and
// returns the frames read. Its buffers are made once and reused by every
// pass, as a collector's connection reuses them.
type decoder struct {
	name string
	pass func(stream []byte) func() (int, error)
}

var decoders = []decoder{
	{decoderLogsock, func(stream []byte) func() (int, error) {
		r := bytes.NewReader(stream)
		d := logsock.NewDecoder(r, nil)
		return func() (int, error) {
			r.Reset(stream)
			d.Reset(r)
			for n := 0; ; n++ {
				if _, err := d.Next(); err == io.EOF {
					return n, nil
				} else if err != nil {
					return n, err
				}
			}
		}
	}},
	// The plain way: a 64 KiB bufio.Reader (the Decoder's largest buffer),
	// io.ReadFull of the header, a check of the length, io.ReadFull of
	// the body into one reused buffer.
	{decoderRaw, func(stream []byte) func() (int, error) {
		r := bytes.NewReader(stream)
		br := bufio.NewReaderSize(r, 64<<10)
		buf := make([]byte, logsock.DefaultMaxFrame)
		var hdr [headerLen]byte
		return func() (int, error) {
			r.Reset(stream)
			br.Reset(r)
			for n := 0; ; n++ {
				if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
					return n, nil
				} else if err != nil {
					return n, err
				}
				size := int32(binary.LittleEndian.Uint32(hdr[:]))
				if size < 0 || size > logsock.DefaultMaxFrame {
					return n, fmt.Errorf("bad length %d", size)
				}
				if _, err := io.ReadFull(br, buf[:size]); err != nil {
					return n, err
				}
			}
		}
	}},
}

// frameStream returns about 1 MiB of frames of size bytes.
func frameStream(size int) []byte {
	msg := []byte(message(size))
	var s []byte
	for range (1 << 20) / (headerLen + size) {
		s = appendFrame(s, msg)
	}
	return s
}

// runDecoders decodes about opt.decodeBytes a run with each decoder, over
// an in-memory stream, and counts the allocations of a pass.
func runDecoders(opt options) []decodeResult {
	var res []decodeResult
	for _, size := range sizes {
		stream := frameStream(size)
		passes := max(1, opt.decodeBytes/len(stream))
		rates := make([][]float64, len(decoders))
		passFns := make([]func() (int, error), len(decoders))
		for i, d := range decoders {
			passFns[i] = d.pass(stream)
		}
		frames := 0
		for run := range opt.runs {
			for i, d := range decoders {
				progress("decoders: run %d/%d %s %s", run+1, opt.runs, sizeName(size), d.name)
				start := time.Now()
				total := 0
				var err error
				for range passes {
					var n int
					if n, err = passFns[i](); err != nil {
						break
					}
					total += n
				}
				if err != nil {
					progressDone()
					fmt.Fprintf(os.Stderr, "%s, %s: %v\n", d.name, sizeName(size), err)
					continue // no rate: the median is of the runs that worked
				}
				frames = total / passes
				rates[i] = append(rates[i], float64(total)/time.Since(start).Seconds())
			}
		}
		for i, d := range decoders {
			r := decodeResult{name: d.name, size: size, rate: median(rates[i])}
			if frames > 0 {
				r.allocs = testing.AllocsPerRun(10, func() { passFns[i]() }) / float64(frames)
			}
			res = append(res, r)
		}
	}
	progressDone()
	return res
}

func findDecoder(rs []decodeResult, name string, size int) decodeResult {
	for _, r := range rs {
		if r.name == name && r.size == size {
			return r
		}
	}
	return decodeResult{}
}

func printDecoders(w io.Writer, rs []decodeResult) {
	fmt.Fprintln(w, "\nDecoders: an in-memory stream of 1 MiB of frames, decoded again and again")
	tw := table(w)
	fmt.Fprintln(tw, "decoder\tsize\tframes/s\tMB/s\tallocs/frame\t/ raw\t")
	for _, r := range rs {
		raw := findDecoder(rs, decoderRaw, r.size)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.4f\t%s\t\n", r.name, sizeName(r.size), rate(r.rate),
			r.rate*float64(r.size)/1e6, r.allocs, ratio(r.rate, raw.rate))
	}
	tw.Flush()
}
