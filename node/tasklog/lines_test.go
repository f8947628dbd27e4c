package tasklog

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func TestWriterSplitsLines(t *testing.T) {
	t1, t2, t3 := t0, t0.Add(time.Second), t0.Add(2*time.Second)
	for _, tc := range []struct {
		name string
		in   []arrival
		want []Line
	}{
		{"empty", nil, []Line{}},
		{"a line", []arrival{{t1, []byte("a\n")}}, []Line{{t1, 0, []byte("a\n")}}},
		{"open line takes later bytes at its own time",
			[]arrival{{t1, []byte("ab")}, {t2, []byte("c\nd")}, {t3, []byte("e")}},
			[]Line{{t1, 0, []byte("abc\n")}, {t2, 4, []byte("de")}}},
		{"carriage returns stay in the line",
			[]arrival{{t1, []byte("1%\r2%\r")}, {t2, []byte("3%\n")}},
			[]Line{{t1, 0, []byte("1%\r2%\r3%\n")}}},
		{"empty lines", []arrival{{t1, []byte("\n\n")}}, []Line{{t1, 0, []byte("\n")}, {t1, 1, []byte("\n")}}},
		{"an empty write starts nothing", []arrival{{t1, nil}, {t2, []byte("x")}}, []Line{{t2, 0, []byte("x")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := writeAll(tc.in)
			if d := diffLines(sourceLines(w), tc.want); d != "" {
				t.Error(d)
			}
		})
	}
}

// The lines put back together are the input, byte for byte, whatever the
// writes; each line is timed by the write of its first byte.
func TestWriterMatchesNaive(t *testing.T) {
	cases := edgeCases()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		cases["random "+string(rune('a'+i))] = randomArrivals(r, 1+r.IntN(60))
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			w := writeAll(in)
			want := naiveLines(in)
			got := sourceLines(w)
			if d := diffLines(got, want); d != "" {
				t.Error(d)
			}
			var cat []byte
			for _, l := range got {
				cat = append(cat, l.Data...)
			}
			if all := concat(in); !bytes.Equal(cat, all) || !bytes.Equal(w.Bytes(), all) || w.Len() != int64(len(all)) {
				t.Errorf("lines joined: %d bytes, Bytes %d, Len %d; want %d", len(cat), len(w.Bytes()), w.Len(), len(all))
			}
		})
	}
}
