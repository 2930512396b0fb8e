package logsock

import "testing"

// TestWriterRing: the ring attributes each unit (handshake or frame) to the
// writer of its first byte and tells whether another wrote any of it, as
// reads add bytes and units take them, including when more writers follow
// one another inside a unit than the ring has segments.
func TestWriterRing(t *testing.T) {
	type take struct {
		n     int
		pid   int32
		mixed bool
	}
	for _, tc := range []struct {
		name  string
		reads [][2]int // bytes, pid
		takes []take
	}{
		{"one read, many frames", [][2]int{{30, 7}}, []take{{4, 7, false}, {10, 7, false}, {16, 7, false}}},
		{"same writer, many reads", [][2]int{{1, 7}, {1, 7}, {1, 7}, {5, 7}}, []take{{8, 7, false}}},
		{"a frame across two writers", [][2]int{{6, 7}, {10, 8}}, []take{{8, 7, true}, {8, 8, false}}},
		{"whole frames of two writers", [][2]int{{8, 7}, {8, 8}, {8, 7}}, []take{{8, 7, false}, {8, 8, false}, {8, 7, false}}},
		{"bytes without credentials", [][2]int{{2, 0}, {6, 7}}, []take{{8, 0, false}}},
		{"more writers than segments", [][2]int{{1, 7}, {1, 8}, {1, 7}, {1, 8}, {1, 7}, {1, 8}, {1, 7}, {9, 9}},
			[]take{{10, 7, true}, {6, 9, false}}},
		{"a frame torn by one byte of another writer", [][2]int{{1, 7}, {1, 7}, {1, 8}, {1, 7}, {1, 7}, {1, 7}, {1, 7}, {4, 7}},
			[]take{{8, 7, true}, {3, 7, false}}},
		{"more taken than read", [][2]int{{3, 7}}, []take{{8, 7, false}, {4, 0, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r writerRing
			for _, rd := range tc.reads {
				r.add(rd[0], int32(rd[1]))
			}
			for i, w := range tc.takes {
				if pid, mixed := r.take(w.n); pid != w.pid || mixed != w.mixed {
					t.Errorf("take %d (%d bytes): pid %d mixed %v, want %d %v", i, w.n, pid, mixed, w.pid, w.mixed)
				}
			}
			if r.size != 0 {
				t.Errorf("%d segments left", r.size)
			}
		})
	}
}
