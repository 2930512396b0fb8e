package logsock

import (
	"testing"
	"time"
)

// TestBackoffSchedule: the wait after n failures is MinBackoff doubled
// n-1 times, capped at MaxBackoff, with jitter in its upper half; for
// every n, so that an outage of any length neither overflows the doubling
// nor panics in the jitter (a collector down for two minutes reached
// n = 39, where 50 ms shifted 38 times overflowed).
func TestBackoffSchedule(t *testing.T) {
	for _, c := range []Config{
		{},
		{MinBackoff: time.Nanosecond, MaxBackoff: time.Duration(1<<63 - 1)},
		{MinBackoff: time.Hour, MaxBackoff: time.Hour},
	} {
		cfg, err := c.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		k := newLink("tcp", "127.0.0.1:1", &cfg, nil, 0, nil)
		want := cfg.MinBackoff
		for n := 1; n <= 200; n++ {
			got := k.backoff(n)
			if got < want/2 || got > want {
				t.Fatalf("MinBackoff %v, MaxBackoff %v: backoff(%d) = %v, want within [%v, %v]",
					cfg.MinBackoff, cfg.MaxBackoff, n, got, want/2, want)
			}
			if want <= cfg.MaxBackoff/2 {
				want *= 2
			} else {
				want = cfg.MaxBackoff
			}
		}
	}
}
