package tasklog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// readEverything reads a blob every way a server would; the first error.
func readEverything(blob []byte) ([]byte, error) {
	s, err := OpenSealed(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		return nil, err
	}
	all, err := io.ReadAll(s.Reader())
	if err != nil {
		return nil, err
	}
	if _, err := s.Lines(0, int(min(s.Totals().Lines, 1<<20))); err != nil {
		return nil, err
	}
	if _, err := s.Tail(3); err != nil {
		return nil, err
	}
	p := make([]byte, 100)
	if _, err := s.ReadAt(p, s.Size()/2); err != nil && err != io.EOF {
		return nil, err
	}
	return all, nil
}

// smallBlob has many tiny frames, lines within them and across them, so
// that a sweep over every bit of it is quick.
func smallBlob(t testing.TB) ([]byte, []byte) {
	in := evenly("first\n", "a progress\rbar\r", "done\n", "a line long enough to cross two frames or three\n", "\n", "x\n")
	in = append(in, arrival{t0, []byte("last, unended")})
	var b bytes.Buffer
	if _, err := sealFrames(&b, writeAll(in), 40); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), concat(in)
}

// Cut short anywhere, the blob is an error, never a panic.
func TestSealedTruncated(t *testing.T) {
	blob, _ := seal(t, writeAll(evenly("one\n", "two\n", "three")))
	for n := range len(blob) {
		if _, err := readEverything(blob[:n]); err == nil {
			t.Errorf("cut to %d of %d bytes: no error", n, len(blob))
		}
	}
}

// A flipped bit anywhere is an error, or (in bits zstd does not use) the
// same stream: never other bytes, never a panic.
func TestSealedBitFlips(t *testing.T) {
	blob, want := smallBlob(t)
	if s := open(t, blob); s.Totals().Frames < 5 {
		t.Fatalf("%d frames, want many", s.Totals().Frames)
	}
	for i := range 8 * len(blob) {
		b := bytes.Clone(blob)
		b[i/8] ^= 1 << (i % 8)
		got, err := readEverything(b)
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("bit %d of byte %d flipped: other bytes and no error", i%8, i/8)
		}
	}
}

// forge rewrites a blob's index with f and mends its checksum, as a
// forger would: only the checks on the index's meaning stand in the way.
func forge(t *testing.T, blob []byte, f func(idx []byte) []byte) []byte {
	t.Helper()
	foot := blob[len(blob)-footerLen:]
	ioff, ilen := binary.LittleEndian.Uint64(foot), binary.LittleEndian.Uint32(foot[8:])
	idx := f(bytes.Clone(blob[ioff : ioff+uint64(ilen)]))
	out := append(bytes.Clone(blob[:ioff]), idx...)
	out = binary.LittleEndian.AppendUint64(out, ioff)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(idx)))
	out = binary.LittleEndian.AppendUint32(out, crcOf(idx))
	return append(out, footerMagic...)
}

func TestSealedForged(t *testing.T) {
	blob, _ := smallBlob(t)
	le := binary.LittleEndian
	put64 := func(at int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint64(b[at:], v); return b }
	}
	put32 := func(at int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[at:], v); return b }
	}
	e1 := totalsLen + entryLen // the second frame's entry
	for _, tc := range []struct {
		name string
		f    func([]byte) []byte
	}{
		{"more bytes than stored", put64(0, 1<<40)},
		{"fewer bytes than stored", put64(0, 10)},
		{"more lines", put64(8, 1000)},
		{"more lines than bytes", put64(8, 1<<50)},
		{"another first time", put64(16, 1)},
		{"another last time", put64(24, 1)},
		{"more frames", put32(32, 9)},
		{"a frame claiming 1 GiB", put32(e1+12, 1<<30)},
		{"a frame claiming a little more", func(b []byte) []byte { le.PutUint32(b[e1+12:], le.Uint32(b[e1+12:])+1); return b }},
		{"a frame claiming a little less", func(b []byte) []byte { le.PutUint32(b[e1+12:], le.Uint32(b[e1+12:])-1); return b }},
		{"frames out of place", put64(e1, 5)},
		{"a stream offset moved", func(b []byte) []byte { le.PutUint64(b[e1+16:], le.Uint64(b[e1+16:])-1); return b }},
		{"a first line moved", func(b []byte) []byte { le.PutUint64(b[e1+24:], le.Uint64(b[e1+24:])+1); return b }},
		{"a frame's time moved", func(b []byte) []byte { le.PutUint64(b[e1+32:], le.Uint64(b[e1+32:])+1); return b }},
		{"a continuation flag flipped", func(b []byte) []byte { b[e1+40] ^= 1; return b }},
		{"unknown flags", func(b []byte) []byte { b[e1+40] = 4; return b }},
		{"a frame dropped", func(b []byte) []byte {
			le.PutUint32(b[32:], le.Uint32(b[32:])-1)
			return b[:len(b)-entryLen]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readEverything(forge(t, blob, tc.f))
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			} else {
				t.Log(err)
			}
		})
	}
}

// A zstd bomb, a frame of a few bytes that inflates far past what its
// entry says, is refused while decoding, not after: by its window, or,
// with a window within bounds, by the length the index gives.
func TestSealedZstdBomb(t *testing.T) {
	for name, window := range map[string]int{"big window": 8 << 20, "small window": 1 << 20} {
		t.Run(name, func(t *testing.T) {
			enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(window))
			if err != nil {
				t.Fatal(err)
			}
			recs := appendRecord(nil, 0, 0, make([]byte, 64<<20)) // 64 MiB of zeros
			bomb := enc.EncodeAll(recs, nil)
			le := binary.LittleEndian
			b := le.AppendUint16(le.AppendUint16([]byte(headerMagic), sealedVersion), 0)
			b = append(b, bomb...)
			idx := make([]byte, totalsLen+entryLen)
			le.PutUint64(idx, 100)   // bytes
			le.PutUint64(idx[8:], 1) // lines
			le.PutUint32(idx[32:], 1)
			le.PutUint64(idx[totalsLen:], headerLen)
			le.PutUint32(idx[totalsLen+8:], uint32(len(bomb)))
			le.PutUint32(idx[totalsLen+12:], 200)
			ioff := len(b)
			b = append(b, idx...)
			b = le.AppendUint64(b, uint64(ioff))
			b = le.AppendUint32(b, uint32(len(idx)))
			b = le.AppendUint32(b, crcOf(idx))
			b = append(b, footerMagic...)
			s, err := OpenSealed(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err) // the index alone is well-formed
			}
			var m1, m2 runtimeMem
			m1.read()
			_, err = io.ReadAll(s.Reader())
			m2.read()
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
			t.Log(err)
			if grew := m2.total - m1.total; grew > 32<<20 {
				t.Errorf("decoding the bomb allocated %d MiB", grew>>20)
			}
		})
	}
}

func TestOpenSealedRefuses(t *testing.T) {
	blob, _ := seal(t, writeAll(evenly("a\n")))
	v2 := bytes.Clone(blob)
	v2[8] = 2
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"not a log", bytes.Repeat([]byte("x"), 200), ErrCorrupt},
		{"version 2", v2, ErrVersion},
	} {
		if _, err := OpenSealed(bytes.NewReader(tc.in), int64(len(tc.in))); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// A size that lies: the reader fails rather than reading past.
	if _, err := OpenSealed(bytes.NewReader(blob), int64(len(blob))+1); err == nil {
		t.Error("a size one too big: no error")
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

// eofReaderAt says io.EOF along with a full read that reaches the end, as
// io.ReaderAt allows.
type eofReaderAt struct{ b []byte }

func (r eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(r.b).ReadAt(p, off)
	if err == nil && off+int64(n) == int64(len(r.b)) {
		err = io.EOF
	}
	return n, err
}

func TestOpenSealedEOFAtEnd(t *testing.T) {
	blob, want := smallBlob(t)
	s, err := OpenSealed(eofReaderAt{blob}, int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(s.Reader()); err != nil || !bytes.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}
