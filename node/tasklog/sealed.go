package tasklog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// maxComp bounds a frame's compressed length: zstd stores what it cannot
// shrink in raw blocks, a few bytes over the input.
const maxComp = MaxFrame + 1<<16

// decoder limits: a frame decodes into at most MaxFrame bytes whatever its
// header says (DecodeAll is given a buffer of the index's length and held
// to it), so a forged frame cannot make it allocate more.
var frameDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxFrame), zstd.WithDecoderMaxWindow(MaxFrame),
		zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
})

// Sealed reads a sealed log in place: opening it reads only its footer and
// index, and each request decompresses just the frames it touches (the
// last two are kept for readers that go on where they stopped). A Sealed
// is safe for concurrent use, as its io.ReaderAt must be.
type Sealed struct {
	r   io.ReaderAt
	tot Totals
	idx []entry
	// limit stands in for MaxLinesBytes when set (tests).
	limit int

	mu    sync.Mutex
	cache [2]*frame // the most recent first
}

// frame is a decoded frame: its stream bytes and where its lines start.
type frame struct {
	k      int
	data   []byte
	starts []int   // in data, of each line that starts in the frame
	times  []int64 // their times
}

// OpenSealed opens the sealed blob of size bytes that r reads. It checks
// the header, footer and index; a frame's records are checked when read.
func OpenSealed(r io.ReaderAt, size int64) (*Sealed, error) {
	if size < headerLen+totalsLen+footerLen {
		return nil, fmt.Errorf("tasklog: sealed log of %d bytes: %w", size, ErrCorrupt)
	}
	var h [headerLen]byte
	if err := readAt(r, h[:], 0); err != nil {
		return nil, fmt.Errorf("tasklog: sealed log header: %w", err)
	}
	if string(h[:8]) != headerMagic {
		return nil, fmt.Errorf("tasklog: not a sealed log: %w", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != sealedVersion || binary.LittleEndian.Uint16(h[10:]) != 0 {
		return nil, fmt.Errorf("tasklog: sealed log version %d flags %#x: %w", v, binary.LittleEndian.Uint16(h[10:]), ErrVersion)
	}
	var f [footerLen]byte
	if err := readAt(r, f[:], size-footerLen); err != nil {
		return nil, fmt.Errorf("tasklog: sealed log footer: %w", err)
	}
	ioff, ilen := binary.LittleEndian.Uint64(f[:]), uint64(binary.LittleEndian.Uint32(f[8:]))
	switch {
	case string(f[16:]) != footerMagic:
		return nil, fmt.Errorf("tasklog: sealed log footer: %w", ErrCorrupt)
	case ilen > maxIndex || ilen < totalsLen || (ilen-totalsLen)%entryLen != 0 ||
		ioff < headerLen || ioff > uint64(size) || ioff+ilen != uint64(size-footerLen):
		return nil, fmt.Errorf("tasklog: sealed log index at %d+%d in %d bytes: %w", ioff, ilen, size, ErrCorrupt)
	}
	b := make([]byte, ilen)
	if err := readAt(r, b, int64(ioff)); err != nil {
		return nil, fmt.Errorf("tasklog: sealed log index: %w", err)
	}
	if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(f[12:]) {
		return nil, fmt.Errorf("tasklog: sealed log index checksum: %w", ErrCorrupt)
	}
	s := &Sealed{r: r}
	if err := s.parseIndex(b, int64(ioff)); err != nil {
		return nil, fmt.Errorf("tasklog: sealed log index: %s: %w", err, ErrCorrupt)
	}
	return s, nil
}

// readAt fills p from off. An io.ReaderAt may say io.EOF with p full
// when p ends where its input does, as the footer does.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// parseIndex checks everything about the index that can be checked
// without decompressing: frames back to back up to the index, stream
// offsets and line numbers rising, sizes within bounds.
func (s *Sealed) parseIndex(b []byte, ioff int64) error {
	le := binary.LittleEndian
	nbytes, lines := le.Uint64(b), le.Uint64(b[8:])
	first, last := int64(le.Uint64(b[16:])), int64(le.Uint64(b[24:]))
	n := (len(b) - totalsLen) / entryLen
	switch {
	case uint64(le.Uint32(b[32:])) != uint64(n) || le.Uint32(b[36:]) != 0:
		return fmt.Errorf("%d frames for %d entries", le.Uint32(b[32:]), n)
	case nbytes > 1<<62 || lines > nbytes:
		return fmt.Errorf("%d bytes, %d lines", nbytes, lines)
	case n == 0 && (nbytes != 0 || lines != 0 || first != 0 || last != 0 || ioff != headerLen):
		return errors.New("no frames, yet output")
	}
	s.idx = make([]entry, n)
	end := int64(headerLen)
	for k := range s.idx {
		p := b[totalsLen+k*entryLen:]
		e := entry{compOff: int64(le.Uint64(p)), compLen: le.Uint32(p[8:]), recLen: le.Uint32(p[12:]),
			rawOff: int64(le.Uint64(p[16:])), firstLine: int64(le.Uint64(p[24:])), firstTime: int64(le.Uint64(p[32:])), cont: p[40] == 1}
		switch {
		case p[40] > 1:
			return fmt.Errorf("frame %d: flags %#x", k, p[40])
		case e.compOff != end || e.compLen < 1 || e.compLen > maxComp || e.recLen < 1 || e.recLen > MaxFrame:
			return fmt.Errorf("frame %d: at %d+%d of %d bytes, want at %d", k, e.compOff, e.compLen, e.recLen, end)
		case k == 0 && (e.rawOff != 0 || e.firstLine != 0 || e.cont || e.firstTime != first):
			return errors.New("frame 0 does not start the stream")
		case k > 0 && (e.rawOff <= s.idx[k-1].rawOff || e.rawOff-s.idx[k-1].rawOff > int64(s.idx[k-1].recLen) ||
			e.firstLine < s.idx[k-1].firstLine || e.firstLine > e.rawOff):
			return fmt.Errorf("frame %d: at byte %d line %d after byte %d line %d", k, e.rawOff, e.firstLine, s.idx[k-1].rawOff, s.idx[k-1].firstLine)
		}
		end += int64(e.compLen)
		s.idx[k] = e
	}
	if n > 0 {
		e := s.idx[n-1]
		if end != ioff || int64(nbytes) <= e.rawOff || int64(nbytes)-e.rawOff > int64(e.recLen) || int64(lines) <= e.firstLine {
			return fmt.Errorf("the last frame, from byte %d line %d, ends at %d, the index at %d, for %d bytes %d lines", e.rawOff, e.firstLine, end, ioff, nbytes, lines)
		}
		s.tot = Totals{Bytes: int64(nbytes), Lines: int64(lines), First: unixNano(first), Last: unixNano(last), Frames: n}
	}
	return nil
}

// Totals are the stream's, as the index states them.
func (s *Sealed) Totals() Totals { return s.tot }

// Size is the stream's length in bytes (with ReadAt, an io.ReaderAt of
// it: io.NewSectionReader(s, 0, s.Size()) can go to http.ServeContent).
func (s *Sealed) Size() int64 { return s.tot.Bytes }

// rawEnd is the stream offset past frame k's last byte.
func (s *Sealed) rawEnd(k int) int64 {
	if k+1 < len(s.idx) {
		return s.idx[k+1].rawOff
	}
	return s.tot.Bytes
}

// frameOf is the frame holding stream byte off (0 ≤ off < Bytes).
func (s *Sealed) frameOf(off int64) int {
	return sort.Search(len(s.idx), func(k int) bool { return s.idx[k].rawOff > off }) - 1
}

// frame returns frame k decoded, from the cache if it is there.
func (s *Sealed) frame(k int) (*frame, error) {
	s.mu.Lock()
	for i, f := range s.cache {
		if f != nil && f.k == k {
			s.cache[0], s.cache[i] = f, s.cache[0]
			s.mu.Unlock()
			return f, nil
		}
	}
	s.mu.Unlock()
	f, err := s.decode(k)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cache[1], s.cache[0] = s.cache[0], f
	s.mu.Unlock()
	return f, nil
}

// decode reads and decompresses frame k and checks its records against
// the index: their bytes add up to the frame's share of the stream, the
// lines they start to the next frame's first line, times agree.
func (s *Sealed) decode(k int) (*frame, error) {
	dec, err := frameDecoder()
	if err != nil {
		return nil, fmt.Errorf("tasklog: zstd: %w", err)
	}
	e := s.idx[k]
	comp := make([]byte, e.compLen)
	if err := readAt(s.r, comp, e.compOff); err != nil {
		return nil, fmt.Errorf("tasklog: sealed log frame %d: %w", k, err)
	}
	recs, err := dec.DecodeAll(comp, make([]byte, 0, e.recLen))
	if err != nil {
		return nil, fmt.Errorf("tasklog: sealed log frame %d: %v: %w", k, err, ErrCorrupt)
	}
	rawLen := s.rawEnd(k) - e.rawOff
	f := &frame{k: k, data: make([]byte, 0, rawLen)}
	d := decoder{b: recs}
	if len(recs) != int(e.recLen) {
		d.fail("records' length")
	}
	prev, cont := e.firstTime, e.cont
	for len(d.b) > 0 {
		at, p := d.record(prev)
		switch {
		case d.err != nil:
		case (cont || len(f.data) == 0) && at != prev:
			d.fail("a line's records with different times")
		case int64(len(f.data)+len(p)) > rawLen:
			d.fail("more bytes than the index says")
		}
		if d.err != nil {
			break
		}
		if !cont {
			f.starts = append(f.starts, len(f.data))
			f.times = append(f.times, at)
		}
		f.data = append(f.data, p...)
		prev, cont = at, !endsLine(p)
	}
	if d.err == nil && int64(len(f.data)) != rawLen {
		d.fail("fewer bytes than the index says")
	}
	if d.err == nil {
		lines := e.firstLine + int64(bytes.Count(f.data, []byte{'\n'}))
		if k+1 < len(s.idx) {
			n := s.idx[k+1]
			if n.firstLine != lines || n.cont != cont || cont && n.firstTime != prev {
				d.fail("the next frame does not follow on")
			}
		} else if cont {
			lines++
		}
		if k+1 == len(s.idx) && (lines != s.tot.Lines || prev != s.tot.Last.UnixNano()) {
			d.fail("the last frame does not end as the totals say")
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("tasklog: sealed log frame %d: %s: %w", k, d.err, ErrCorrupt)
	}
	return f, nil
}
