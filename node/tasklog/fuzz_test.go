package tasklog

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// Seeds beyond these are in testdata/fuzz, which plain go test replays.

// Any bytes decode to a chunk or an error; a chunk re-encodes to one that
// decodes the same. The fuzzer's bytes are tried with their length and
// checksum mended too, or it would rarely get past the CRC.
func FuzzChunkDecode(f *testing.F) {
	for _, c := range []Chunk{
		{Task: "t", Attempt: 1},
		{Task: "build", Attempt: 2, Seq: 3, Offset: 10, Line: 2, Final: true, Records: []Record{{t0, []byte("ab")}, {t0, []byte("c\n")}, {t0.Add(time.Second), []byte("\r")}}},
	} {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, mendChunk(b)} {
			c, n, err := DecodeChunk(in)
			if err != nil {
				continue
			}
			if n > len(in) {
				t.Fatalf("took %d of %d bytes", n, len(in))
			}
			again, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("a decoded chunk does not encode: %v", err)
			}
			d, _, err := DecodeChunk(again)
			if err != nil || !chunksEqual(c, d) {
				t.Fatalf("re-decoded: %+v, %v; want %+v", d, err, c)
			}
			r := NewReplica(c.Task, c.Attempt)
			_ = r.Apply(Chunk{Task: c.Task, Attempt: c.Attempt, Seq: 0, Records: []Record{{t0, []byte("x")}}})
			_ = r.Apply(c)
		}
	})
}

func mendChunk(b []byte) []byte {
	if len(b) < 8 {
		return b
	}
	b = bytes.Clone(b)
	n := len(b) - 8
	binary.LittleEndian.PutUint32(b, uint32(n))
	binary.LittleEndian.PutUint32(b[4+n:], crcOf(b[4:4+n]))
	return b
}

// Any bytes open as a blob or fail, and read every way without a panic;
// also with the checksum of what the footer points at mended.
func FuzzSealedOpen(f *testing.F) {
	var b bytes.Buffer
	Seal(&b, writeAll(evenly("a\n", "bb\rcc", "\n", "end")))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		readEverything(b)
		readEverything(mendIndex(b))
	})
}

func mendIndex(b []byte) []byte {
	if len(b) < footerLen {
		return b
	}
	foot := b[len(b)-footerLen:]
	ioff, ilen := binary.LittleEndian.Uint64(foot), uint64(binary.LittleEndian.Uint32(foot[8:]))
	if ioff > uint64(len(b)) || ilen > uint64(len(b))-ioff {
		return b
	}
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-footerLen+12:], crcOf(b[ioff:ioff+ilen]))
	return b
}

// Any output, cut into writes and timed by seed, comes back byte for byte
// and line for line through a Writer, chunks and a Replica, and a blob of
// tiny frames (so lines cross frames).
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello\nworld"), uint64(1), uint8(0))
	f.Add([]byte("\r\r\n\n\x00\xff"), uint64(2), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, frame uint8) {
		r := rand.New(rand.NewPCG(seed, seed>>1))
		var in []arrival
		at := t0
		for p := data; len(p) > 0; {
			k := 1 + r.IntN(len(p))
			at = at.Add(time.Duration(r.Int64N(int64(3*time.Second))) - time.Second)
			in, p = append(in, arrival{at, p[:k]}), p[k:]
		}
		want := naiveLines(in)
		w := writeAll(in)
		if d := diffLines(sourceLines(w), want); d != "" {
			t.Fatalf("writer: %s", d)
		}
		c, rep := NewChunker("t", 1), NewReplica("t", 1)
		apply := func(ch Chunk) {
			b, err := ch.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			d, _, err := DecodeChunk(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Apply(d); err != nil {
				t.Fatal(err)
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
		if d := diffLines(sourceLines(rep), want); d != "" {
			t.Fatalf("replica: %s", d)
		}
		var blob bytes.Buffer
		if _, err := sealFrames(&blob, rep, 2*binaryMaxVarints+1+int(frame)); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s.Reader())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("sealed: %q, %v; want %q", got, err, data)
		}
		lines, err := s.Lines(0, len(want))
		if err != nil {
			t.Fatal(err)
		}
		if d := diffLines(lines, want); d != "" {
			t.Fatalf("sealed lines: %s", d)
		}
		if len(want) > 0 {
			from := r.IntN(len(want))
			tail, err := s.Tail(len(want) - from)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffLines(tail, want[from:]); d != "" {
				t.Fatalf("sealed tail: %s", d)
			}
		}
	})
}

const binaryMaxVarints = binary.MaxVarintLen64
