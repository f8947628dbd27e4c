package tasklog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// step is one thing the runner does to a log: a write of output, a note,
// or (tick) the streamer's ticker firing, all at at.
type step struct {
	at   time.Time
	p    []byte
	note string
	tick bool
}

func writes(ws []arrival) []step {
	out := make([]step, len(ws))
	for i, w := range ws {
		out[i] = step{at: w.at, p: w.p}
	}
	return out
}

// teed is a log streamed as node.streamLog streams it: its Tee feeds a
// Chunker, whose chunks are kept in the order cut.
type teed struct {
	s      *Store
	l      *Log
	now    time.Time
	ch     *Chunker
	chunks []Chunk
	off    int64 // file offset where the stream starts
}

// newTeed makes the log of t1/1 in dir (max bytes of output, 0: no cap),
// with mask on its notes (nil: none); before runs before the tee.
func newTeed(t *testing.T, dir string, max int64, mask func([]byte) []byte, before []step) *teed {
	t.Helper()
	x := &teed{s: New(dir, max), now: t0}
	x.s.Now = func() time.Time { return x.now }
	l, err := x.s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	x.l = l
	if mask != nil {
		l.MaskNotes(mask)
	}
	for _, st := range before {
		x.do(st)
	}
	if fi, err := os.Stat(x.s.path("t1", 1)); err == nil {
		x.off = fi.Size()
	}
	x.ch = NewChunker("t1", 1)
	l.Tee(func(at time.Time, p []byte) { x.chunks = append(x.chunks, x.ch.Write(at, p)...) })
	return x
}

func (x *teed) do(st step) {
	x.now = st.at
	switch {
	case st.tick:
		if x.ch != nil {
			if c, ok := x.ch.Tick(st.at); ok {
				x.chunks = append(x.chunks, c)
			}
		}
	case st.note != "":
		x.l.Note("%s", st.note)
	default:
		x.l.Write(st.p)
	}
}

// end stops the tee and closes the chunker, as streamLog's stop does,
// then finishes the log.
func (x *teed) end() {
	x.l.Tee(nil)
	x.chunks = append(x.chunks, x.ch.Close())
	x.l.Finish()
}

// checkRechunk cuts every chunk again from the file and compares the
// encodings; the chunks, applied to a replica, hold the file's stream.
func (x *teed) checkRechunk(t *testing.T) {
	t.Helper()
	r := NewReplica("t1", 1)
	for _, c := range x.chunks {
		want, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("chunk %d: %v", c.Seq, err)
		}
		got, err := x.l.Rechunk(c.Bounds())
		if err != nil {
			t.Fatalf("rechunk %d (%+v): %v", c.Seq, c.Bounds(), err)
		}
		enc, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("rechunked %d: %v", c.Seq, err)
		}
		if !bytes.Equal(enc, want) {
			t.Fatalf("chunk %d cut again differs:\n got %s\nwant %s", c.Seq, describeChunk(got), describeChunk(c))
		}
		if err := r.Apply(got); err != nil {
			t.Fatalf("apply rechunked %d: %v", c.Seq, err)
		}
	}
	file, err := os.ReadFile(x.s.path("t1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Done() || !bytes.Equal(r.Bytes(), file[x.off:]) {
		t.Fatalf("replica of the rechunked stream: done %v, %d bytes; want the file's %d from %d", r.Done(), len(r.Bytes()), len(file)-int(x.off), x.off)
	}
}

func describeChunk(c Chunk) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq %d off %d line %d final %v:", c.Seq, c.Offset, c.Line, c.Final)
	for _, r := range c.Records {
		fmt.Fprintf(&b, " {%d %.20q+%d}", r.At.UnixNano(), r.Data, len(r.Data))
	}
	return b.String()
}

// ticked puts a tick before every step (the streamer's ticker fires
// often), so chunks are cut by time as well as by size.
func ticked(ss []step) []step {
	var out []step
	for _, s := range ss {
		out = append(out, step{at: s.at, tick: true}, s)
	}
	return out
}

func TestRechunkEdgeCases(t *testing.T) {
	for name, ws := range edgeCases() {
		for _, tick := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ticks=%v", name, tick), func(t *testing.T) {
				ss := writes(ws)
				if tick {
					ss = ticked(ss)
				}
				x := newTeed(t, t.TempDir(), 0, nil, nil)
				for _, s := range ss {
					x.do(s)
				}
				x.end()
				x.checkRechunk(t)
			})
		}
	}
}

// Notes (masked, after an unended line on a line of their own), the cap's
// marker, a leftover of an earlier life and a tee that starts inside a
// line: the bytes the tee sees are the file's.
func TestRechunkNotesMaskCapLeftover(t *testing.T) {
	mask := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("hunter2"), []byte("***")) }
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 700 * time.Millisecond) }
	progress := []step{
		{at: at(1), p: []byte("compiling 10%\r")}, {at: at(2), tick: true}, {at: at(2), p: []byte("compiling 60%\r")},
		{at: at(3), note: "the token is hunter2"}, {at: at(4), tick: true},
		{at: at(4), p: []byte("compiling 100%\ndone")}, {at: at(5), tick: true},
		{at: at(6), p: bytes.Repeat([]byte("long line "), 20000)}, {at: at(7), note: "exit 0 (hunter2)"},
	}
	for _, tc := range []struct {
		name   string
		max    int64
		before []step
		life   string // an earlier life's output, on disk before Create
	}{
		{name: "notes and masking"},
		{name: "capped", max: 100 << 10},
		{name: "tee inside a line", before: []step{{at: at(0), p: []byte("begun before the tee ")}}},
		{name: "a leftover", life: "an earlier life\nunended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.life != "" {
				if err := os.MkdirAll(dir+"/t1", 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir+"/t1/1.log", []byte(tc.life), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			x := newTeed(t, dir, tc.max, mask, tc.before)
			for _, s := range progress {
				x.do(s)
			}
			x.end()
			file, _ := os.ReadFile(x.s.path("t1", 1))
			if bytes.Contains(file, []byte("hunter2")) || !bytes.Contains(file, []byte("[ourci] the token is ***\n")) {
				t.Fatalf("the file: want masked notes, got %.300q", file)
			}
			if len(x.chunks) < 3 {
				t.Fatalf("%d chunks: want the stream cut several times", len(x.chunks))
			}
			x.checkRechunk(t)
		})
	}
}

// Random streams, notes and ticks: every chunk cut again is the same.
func TestRechunkRandom(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			var ss []step
			var before []step
			for i, a := range randomArrivals(r, 40) {
				switch r.IntN(6) {
				case 0:
					ss = append(ss, step{at: a.at, tick: true})
				case 1:
					ss = append(ss, step{at: a.at, note: fmt.Sprintf("note %d", i)})
				}
				if i < 2 && seed%3 == 0 {
					before = append(before, step{at: a.at, p: a.p}) // a tee started late, maybe inside a line
					continue
				}
				ss = append(ss, step{at: a.at, p: a.p})
			}
			x := newTeed(t, t.TempDir(), int64(r.IntN(2))*int64(r.IntN(4<<20)), nil, before)
			for _, s := range ss {
				x.do(s)
			}
			x.end()
			x.checkRechunk(t)
		})
	}
}

// While the task writes, chunks cut so far are cut again the same (the
// file is written up to every chunk handed out), from another goroutine.
func TestRechunkWhileWriting(t *testing.T) {
	s := New(t.TempDir(), 0)
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	ch := NewChunker("t1", 1)
	cut := make(chan Chunk, 1024)
	l.Tee(func(at time.Time, p []byte) {
		for _, c := range ch.Write(at, p) {
			cut <- c
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for c := range cut {
			got, err := l.Rechunk(c.Bounds())
			a, _ := got.MarshalBinary()
			b, _ := c.MarshalBinary()
			if err != nil || !bytes.Equal(a, b) {
				select {
				case errs <- fmt.Errorf("chunk %d: %v, same %v", c.Seq, err, bytes.Equal(a, b)):
				default:
				}
			}
		}
	}()
	for i := range 20000 {
		fmt.Fprintf(l, "line %d of a busy build %s\n", i, strings.Repeat("=", i%100))
	}
	l.Tee(nil)
	cut <- ch.Close()
	close(cut)
	wg.Wait()
	l.Finish()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func TestRechunkRefuses(t *testing.T) {
	dir := t.TempDir()
	x := newTeed(t, dir, 0, nil, nil)
	x.do(step{at: t0, p: []byte("one\ntwo\n")})
	if _, err := x.l.Rechunk(ChunkBounds{Seq: 0, Offset: 0, End: 9}); err == nil {
		t.Errorf("rechunk past what was written: want an error")
	}
	if _, err := x.l.Rechunk(ChunkBounds{Seq: 0, Offset: 4, End: 8, Line: 0}); err == nil {
		t.Errorf("rechunk with the wrong line: want an error")
	}
	if c, err := x.l.Rechunk(ChunkBounds{Seq: 0, Offset: 4, End: 8, Line: 1}); err != nil || len(c.Records) != 1 || string(c.Records[0].Data) != "two\n" {
		t.Errorf("rechunk line 1: got %s, %v", describeChunk(c), err)
	}
	s := New(dir, 0)
	l, err := s.Create("t2", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("never teed\n"))
	if _, err := l.Rechunk(ChunkBounds{End: 3}); err == nil {
		t.Errorf("rechunk of a log no tee saw: want an error")
	}
	x.end()
	if err := x.s.Retire("t1", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := x.l.Rechunk(ChunkBounds{Seq: 0, Offset: 0, End: 4}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rechunk after Retire: got %v, want ErrNotExist", err)
	}
}

// Any stream, cut into writes at 0xff bytes (the byte after one says how
// many 100 ms pass, odd: a tick too, 0xfe: a note), is cut again the same.
func FuzzRechunk(f *testing.F) {
	f.Add([]byte("abc\xff\x01def\nghi\xff\x0b\r\r\xff\xfe\xff\x02end"))
	f.Add(append(bytes.Repeat([]byte("x"), 70<<10), "\xff\x03\n"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := newTeed(t, t.TempDir(), 0, nil, nil)
		at := t0
		for i, w := range bytes.Split(b, []byte{0xff}) {
			if i > 0 && len(w) > 0 {
				d := w[0]
				w = w[1:]
				at = at.Add(time.Duration(d) * 100 * time.Millisecond)
				switch {
				case d == 0xfe:
					x.do(step{at: at, note: "a note"})
				case d%2 == 1:
					x.do(step{at: at, tick: true})
				}
			}
			x.do(step{at: at, p: w})
		}
		x.end()
		x.checkRechunk(t)
	})
}
