package tasklog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Scan walks every line with its time and offset, a line's first limit
// bytes, across frames of any size, and stops at fn's error.
func TestSealedScan(t *testing.T) {
	cases := edgeCases()
	r := rand.New(rand.NewPCG(3, 4))
	cases["random"] = randomArrivals(r, 40)
	for name, in := range cases {
		want := naiveLines(in)
		for _, target := range []int{2*binaryMaxVarints + 1, 1000, FrameTarget} {
			if target < 1000 && len(concat(in)) > 64<<10 {
				continue // a frame of a few bytes each: too many
			}
			var blob bytes.Buffer
			if _, err := sealFrames(&blob, writeAll(in), target); err != nil {
				t.Fatal(err)
			}
			s := open(t, blob.Bytes())
			for _, limit := range []int{0, 1, 7, 1 << 20} {
				var got []Line
				err := s.Scan(limit, func(i int64, l Line) error {
					if i != int64(len(got)) {
						return fmt.Errorf("line %d after %d", i, len(got))
					}
					l.Data = bytes.Clone(l.Data)
					got = append(got, l)
					return nil
				})
				cut := make([]Line, len(want))
				for i, l := range want {
					n := len(l.Data)
					if limit > 0 {
						n = min(n, limit)
					}
					cut[i] = Line{At: l.At, Offset: l.Offset, Data: l.Data[:n]}
				}
				if d := diffLines(got, cut); err != nil || d != "" {
					t.Fatalf("%s, frames of %d, limit %d: %v %s", name, target, limit, err, d)
				}
			}
		}
	}
	stop := errors.New("stop")
	s := open(t, must(seal(t, writeAll(evenly("a\n", "b\n", "c\n")))))
	n := 0
	if err := s.Scan(0, func(int64, Line) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Scan after fn's error: %v, %d calls; want stop after 1", err, n)
	}
}
