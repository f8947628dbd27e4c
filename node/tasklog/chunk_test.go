package tasklog

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestChunkRoundTrip(t *testing.T) {
	for _, c := range []Chunk{
		{Task: "t1", Attempt: 1},
		{Task: "t1", Attempt: 2, Seq: 7, Offset: 100, Line: 3, Final: true},
		{Task: "build-linux", Attempt: 1, Seq: 1, Offset: 5, Line: 1, Records: []Record{
			{t0, []byte("continued\n")}, {t0.Add(time.Second), []byte("x\r\n")}, {t0.Add(-time.Hour), []byte("open")}}},
		{Task: "", Attempt: 0, Records: []Record{{time.Unix(0, 0).UTC(), []byte{0, 0xff, '\n'}}}},
	} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		var got Chunk
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("unmarshal %+v: %v", c, err)
		}
		if !chunksEqual(got, c) {
			t.Errorf("round trip: got %+v, want %+v", got, c)
		}
		// Back to back, as a stream carries them.
		two := append(append([]byte(nil), b...), b...)
		d, n, err := DecodeChunk(two)
		if err != nil || n != len(b) || !chunksEqual(d, c) {
			t.Errorf("DecodeChunk of two: got %+v, %d, %v; want the first, %d", d, n, err, len(b))
		}
	}
}

func chunksEqual(a, b Chunk) bool {
	if a.Task != b.Task || a.Attempt != b.Attempt || a.Seq != b.Seq || a.Offset != b.Offset || a.Line != b.Line || a.Final != b.Final || len(a.Records) != len(b.Records) {
		return false
	}
	for i := range a.Records {
		if !a.Records[i].At.Equal(b.Records[i].At) || !bytes.Equal(a.Records[i].Data, b.Records[i].Data) {
			return false
		}
	}
	return true
}

func TestChunkRefused(t *testing.T) {
	good, err := (&Chunk{Task: "t", Attempt: 1, Records: []Record{{t0, []byte("ab\n")}}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"cut short", good[:len(good)-1], ErrCorrupt},
		{"a bit flipped", flip(10), ErrCorrupt},
		{"checksum flipped", flip(len(good) - 1), ErrCorrupt},
		{"a huge length", []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4}, ErrCorrupt},
		{"version 2", rechecksum(good, 4, 2), ErrVersion},
		{"unknown flag", rechecksum(good, 5, 2), ErrCorrupt},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Chunk
			if err := c.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	bad := []Chunk{
		{Task: "t", Records: []Record{{t0, nil}}},
		{Task: "t", Records: []Record{{t0, []byte("ab")}, {t0.Add(1), []byte("c\n")}}},
		{Task: "t", Attempt: -1},
		{Task: string(make([]byte, maxTask+1))},
		{Task: "t", Records: []Record{{t0, make([]byte, MaxChunk)}}},
	}
	for _, c := range bad {
		if _, err := c.MarshalBinary(); err == nil {
			t.Errorf("marshal %.60v: no error", c)
		}
	}
}

// rechecksum sets byte i to v and mends the CRC, so only the field is bad.
func rechecksum(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	n := len(b) - 4
	c := crcOf(b[4:n])
	b[n], b[n+1], b[n+2], b[n+3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	return b
}

// An instrumented clock: chunks are cut at 64 KiB, 1 s after the first
// pending byte, and at the end, never else.
func TestChunkerCuts(t *testing.T) {
	c := NewChunker("t", 1)
	if _, ok := c.Due(); ok {
		t.Error("Due with nothing pending")
	}
	if got := c.Write(t0, []byte("a\nb")); len(got) != 0 {
		t.Errorf("a small write: %d chunks", len(got))
	}
	if due, ok := c.Due(); !ok || !due.Equal(t0.Add(ChunkInterval)) {
		t.Errorf("Due: got %v %v, want %v", due, ok, t0.Add(ChunkInterval))
	}
	c.Write(t0.Add(500*time.Millisecond), []byte("c"))
	if _, ok := c.Tick(t0.Add(999 * time.Millisecond)); ok {
		t.Error("Tick cut before a second passed")
	}
	ch, ok := c.Tick(t0.Add(time.Second))
	want := Chunk{Task: "t", Attempt: 1, Seq: 0, Records: []Record{{t0, []byte("a\n")}, {t0, []byte("bc")}}}
	if !ok || !chunksEqual(ch, want) {
		t.Errorf("Tick: got %+v %v, want %+v", ch, ok, want)
	}
	// The open line goes on in the next chunk, with its own time.
	big := c.Write(t0.Add(3*time.Second), append([]byte("d\n"), make([]byte, 2*ChunkBytes)...))
	if len(big) != 2 || big[0].Len() != ChunkBytes || big[1].Len() != ChunkBytes {
		t.Fatalf("a 128 KiB write: got %d chunks, want 2 of 64 KiB", len(big))
	}
	if r := big[0].Records[0]; !r.At.Equal(t0) || string(r.Data) != "d\n" || big[0].Offset != 4 || big[0].Line != 1 || big[0].Seq != 1 {
		t.Errorf("the chunk after an open line: %+v", big[0])
	}
	if big[1].Offset != 4+ChunkBytes || big[1].Line != 2 || big[1].Seq != 2 {
		t.Errorf("the chunk inside a long line: offset %d line %d seq %d", big[1].Offset, big[1].Line, big[1].Seq)
	}
	last := c.Close()
	if !last.Final || last.Seq != 3 || last.Len() != 2 {
		t.Errorf("Close: %+v", last)
	}
	if again := c.Close(); !chunksEqual(again, last) {
		t.Errorf("Close again: got %+v, want the same %+v", again, last)
	}
	if got := c.Write(t0, []byte("late")); got != nil {
		t.Errorf("write after Close: %d chunks", len(got))
	}
}

// Chunks from a Chunker, applied to a Replica in order (some twice), give
// the writer's lines exactly.
func TestChunkerToReplica(t *testing.T) {
	cases := edgeCases()
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 10 {
		cases["random "+string(rune('a'+i))] = randomArrivals(r, 1+r.IntN(60))
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			c := NewChunker("t", 2)
			rep := NewReplica("t", 2)
			apply := func(ch Chunk) {
				b, err := ch.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var d Chunk
				if err := d.UnmarshalBinary(b); err != nil {
					t.Fatal(err)
				}
				for range 1 + r.IntN(2) { // sometimes twice
					if err := rep.Apply(d); err != nil {
						t.Fatalf("apply chunk %d: %v", d.Seq, err)
					}
				}
			}
			for _, a := range in {
				if ch, ok := c.Tick(a.at); ok {
					apply(ch)
				}
				for _, ch := range c.Write(a.at, a.p) {
					apply(ch)
				}
			}
			apply(c.Close())
			if d := diffLines(sourceLines(rep), naiveLines(in)); d != "" {
				t.Error(d)
			}
			if !bytes.Equal(rep.Bytes(), concat(in)) || !rep.Done() {
				t.Errorf("replica: %d bytes, done %v; want %d, done", len(rep.Bytes()), rep.Done(), len(concat(in)))
			}
		})
	}
}

func TestReplicaRefuses(t *testing.T) {
	c := NewChunker("t", 1)
	var chunks []Chunk
	chunks = append(chunks, c.Write(t0, []byte("ab"))...)
	ch, _ := c.Tick(t0.Add(time.Second))
	chunks = append(chunks, ch)
	c.Write(t0.Add(2*time.Second), []byte("c\nd\n"))
	ch, _ = c.Tick(t0.Add(3 * time.Second))
	chunks = append(chunks, ch, c.Close())
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}
	fresh := func(n int) *Replica {
		r := NewReplica("t", 1)
		for _, ch := range chunks[:n] {
			if err := r.Apply(ch); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	shift := func(ch Chunk, f func(*Chunk)) Chunk { f(&ch); return ch }
	for _, tc := range []struct {
		name string
		have int
		c    Chunk
		want error
	}{
		{"a gap", 1, chunks[2], ErrGap},
		{"another attempt", 0, shift(chunks[0], func(c *Chunk) { c.Attempt = 2 }), ErrOtherAttempt},
		{"another task", 0, shift(chunks[0], func(c *Chunk) { c.Task = "u" }), ErrOtherAttempt},
		{"an offset that does not follow on", 1, shift(chunks[1], func(c *Chunk) { c.Offset++ }), ErrDiscontinuous},
		{"a line that does not follow on", 1, shift(chunks[1], func(c *Chunk) { c.Line++ }), ErrDiscontinuous},
		{"an open line at another time", 1, shift(chunks[1], func(c *Chunk) {
			c.Records = append([]Record{{t0.Add(time.Minute), c.Records[0].Data}}, c.Records[1:]...)
		}), ErrDiscontinuous},
		{"a repeat with other bytes", 2, shift(chunks[1], func(c *Chunk) { c.Records = c.Records[:1] }), ErrDiscontinuous},
		{"after the final one", 3, Chunk{Task: "t", Attempt: 1, Seq: 3, Offset: 6, Line: 2}, ErrEnded},
		{"an empty record", 0, shift(chunks[0], func(c *Chunk) { c.Records = []Record{{t0, nil}} }), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fresh(tc.have)
			before := bytes.Clone(r.Bytes())
			err := r.Apply(tc.c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !bytes.Equal(r.Bytes(), before) || r.Next() != uint64(tc.have) {
				t.Errorf("a refused chunk changed the replica: %q next %d, was %q next %d", r.Bytes(), r.Next(), before, tc.have)
			}
		})
	}
	var gap *GapError
	if err := fresh(1).Apply(chunks[2]); !errors.As(err, &gap) || !reflect.DeepEqual(*gap, GapError{Want: 1, Got: 2}) {
		t.Errorf("gap: got %v, want a *GapError wanting 1", err)
	}
	if err := fresh(3).Apply(chunks[1]); err != nil {
		t.Errorf("a repeat after the end: %v", err)
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
