package tasklog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func seal(t testing.TB, src Source) ([]byte, SealInfo) {
	t.Helper()
	var b bytes.Buffer
	info, err := Seal(&b, src)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), info
}

func open(t testing.TB, blob []byte) *Sealed {
	t.Helper()
	s, err := OpenSealed(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every stream seals and reads back byte for byte, line for line, time
// for time, whichever way it is read.
func TestSealRoundTrip(t *testing.T) {
	cases := edgeCases()
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 10 {
		cases["random "+string(rune('a'+i))] = randomArrivals(r, 1+r.IntN(80))
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			all, want := concat(in), naiveLines(in)
			blob, info := seal(t, writeAll(in))
			if h := sha256.Sum256(blob); info.Hash != hex.EncodeToString(h[:]) || info.Size != int64(len(blob)) {
				t.Errorf("info: hash %s size %d, want %x %d", info.Hash, info.Size, h, len(blob))
			}
			s := open(t, blob)
			tot := s.Totals()
			if tot != info.Totals || tot.Bytes != int64(len(all)) || tot.Lines != int64(len(want)) {
				t.Errorf("totals: got %+v, sealed %+v, want %d bytes %d lines", tot, info.Totals, len(all), len(want))
			}
			if len(want) > 0 && (!tot.First.Equal(want[0].At) || !tot.Last.Equal(want[len(want)-1].At)) {
				t.Errorf("totals: first %v last %v, want %v %v", tot.First, tot.Last, want[0].At, want[len(want)-1].At)
			}
			got, err := io.ReadAll(s.Reader())
			if err != nil || !bytes.Equal(got, all) {
				t.Errorf("Reader: %d bytes, %v; want %d", len(got), err, len(all))
			}
			var buf bytes.Buffer
			if _, err := s.Reader().(io.WriterTo).WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), all) {
				t.Errorf("WriteTo: %d bytes, %v; want %d", buf.Len(), err, len(all))
			}
			got, err = io.ReadAll(s.Range(0, s.Size()))
			if err != nil || !bytes.Equal(got, all) {
				t.Errorf("Range: %d bytes, %v; want %d", len(got), err, len(all))
			}
			lines, err := s.Lines(0, len(want)+1)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffLines(lines, want); d != "" {
				t.Errorf("Lines: %s", d)
			}
		})
	}
}

// A replica seals to the very blob its writer would.
func TestSealReplicaLikeWriter(t *testing.T) {
	in := randomArrivals(rand.New(rand.NewPCG(9, 10)), 100)
	c, rep := NewChunker("t", 1), NewReplica("t", 1)
	for _, a := range in {
		for _, ch := range c.Write(a.at, a.p) {
			if err := rep.Apply(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rep.Apply(c.Close()); err != nil {
		t.Fatal(err)
	}
	a, ia := seal(t, writeAll(in))
	b, ib := seal(t, rep)
	if !bytes.Equal(a, b) || ia != ib {
		t.Errorf("writer sealed %s, replica %s", ia.Hash, ib.Hash)
	}
}

// ReadAt, Lines and Tail against slicing the whole stream, over many
// frames and lines that cross them.
func TestSealedReadsAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	in := randomArrivals(r, 300)
	in = append(in, edgeCases()["10 MiB line plus"]...)
	all, want := concat(in), naiveLines(in)
	blob, _ := seal(t, writeAll(in))
	s := open(t, blob)
	if s.Totals().Frames < 10 {
		t.Fatalf("%d frames: the test wants many", s.Totals().Frames)
	}
	n := int64(len(all))
	for range 300 {
		off := r.Int64N(n + 10)
		p := make([]byte, r.IntN(600<<10))
		k, err := s.ReadAt(p, off)
		wantN := int(max(0, min(n-off, int64(len(p)))))
		switch {
		case k != wantN:
			t.Fatalf("ReadAt(%d, %d): %d bytes, want %d", off, len(p), k, wantN)
		case k < len(p) && err != io.EOF, k == len(p) && err != nil:
			t.Fatalf("ReadAt(%d, %d): %v", off, len(p), err)
		case k > 0 && !bytes.Equal(p[:k], all[off:off+int64(k)]):
			t.Fatalf("ReadAt(%d, %d): other bytes", off, len(p))
		}
	}
	L := len(want)
	for range 300 {
		from, m := r.IntN(L+5), r.IntN(50)
		got, err := s.Lines(int64(from), m)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffLines(got, want[min(from, L):min(from+m, L)]); d != "" {
			t.Fatalf("Lines(%d, %d): %s", from, m, d)
		}
	}
	for _, m := range []int{0, 1, 2, 10, 333, L, L + 1} {
		got, err := s.Tail(m)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffLines(got, want[max(0, L-m):]); d != "" {
			t.Errorf("Tail(%d): %s", m, d)
		}
	}
}

// Past MaxLinesBytes Lines stops short, Tail keeps the last lines that
// fit, and a line too long alone is ErrTooLarge.
func TestSealedLinesBounded(t *testing.T) {
	in := evenly("aaaa\n", "bbbb\n", "cccc\n", "dddddddddddddddddddd\n", "ee\n")
	want := naiveLines(in)
	blob, _ := seal(t, writeAll(in))
	s := open(t, blob)
	s.limit = 12
	for _, tc := range []struct {
		name string
		f    func() ([]Line, error)
		want []Line
		err  error
	}{
		{"Lines stops short", func() ([]Line, error) { return s.Lines(0, 5) }, want[:2], nil},
		{"Lines of one too long", func() ([]Line, error) { return s.Lines(3, 1) }, nil, ErrTooLarge},
		{"Tail keeps the last that fit", func() ([]Line, error) { return s.Tail(2) }, want[4:], nil},
		{"Tail of a last line too long", func() ([]Line, error) {
			b, _ := seal(t, writeAll(evenly("a\n", "0123456789abcdefgh")))
			s := open(t, b)
			s.limit = 12
			return s.Tail(1)
		}, nil, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f()
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if d := diffLines(got, tc.want); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestSealRefusesBadSource(t *testing.T) {
	for name, ls := range map[string][]Line{
		"an empty line":          {{At: t0, Data: nil}},
		"an unended middle line": {{At: t0, Data: []byte("a")}, {At: t0, Data: []byte("b\n")}},
	} {
		if _, err := Seal(io.Discard, lineSlice(ls)); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
}

type lineSlice []Line

func (l lineSlice) NumLines() int   { return len(l) }
func (l lineSlice) Line(i int) Line { return l[i] }

// However many lines are asked for, one call returns at most MaxLines.
func TestSealedLinesCapped(t *testing.T) {
	in := []arrival{{t0, bytes.Repeat([]byte("\n"), MaxLines+10)}}
	want := naiveLines(in)
	s := open(t, must(seal(t, writeAll(in))))
	tail, err := s.Tail(len(want))
	if err != nil {
		t.Fatal(err)
	}
	if d := diffLines(tail, want[10:]); d != "" {
		t.Errorf("Tail: %s", d)
	}
	lines, err := s.Lines(0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffLines(lines, want[:MaxLines]); d != "" {
		t.Errorf("Lines: %s", d)
	}
}

func must(b []byte, _ SealInfo) []byte { return b }
