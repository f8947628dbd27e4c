package tasklog

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxLinesBytes and MaxLines bound what one Lines or Tail call returns:
// lines that hold more bytes are read by byte range (ReadAt) instead, so
// one forged or monstrous line cannot make a reader allocate without
// bound, nor can a request for a billion empty lines.
const (
	MaxLinesBytes = 32 << 20
	MaxLines      = 1 << 17
)

// ErrTooLarge means the lines asked for hold more than MaxLinesBytes.
var ErrTooLarge = errors.New("tasklog: lines too large to return at once: read them by byte range")

func (s *Sealed) maxLines() int {
	if s.limit > 0 {
		return s.limit
	}
	return MaxLinesBytes
}

// ReadAt reads the stream's bytes at off (io.ReaderAt).
func (s *Sealed) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("tasklog: read at %d", off)
	}
	if off >= s.tot.Bytes {
		return 0, io.EOF
	}
	n := 0
	for k := s.frameOf(off); n < len(p) && k < len(s.idx); k++ {
		f, err := s.frame(k)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], f.data[off+int64(n)-s.idx[k].rawOff:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Range reads n bytes of the stream from off (an HTTP Range).
func (s *Sealed) Range(off, n int64) *io.SectionReader { return io.NewSectionReader(s, off, n) }

// Reader reads the whole stream, for a raw download. It decodes each
// frame once, past the cache, which it would only churn.
func (s *Sealed) Reader() io.Reader { return &sealedReader{s: s} }

type sealedReader struct {
	s   *Sealed
	k   int
	buf []byte
	err error
}

func (r *sealedReader) next() bool {
	if r.err != nil {
		return false
	}
	if r.k == len(r.s.idx) {
		r.err = io.EOF
		return false
	}
	f, err := r.s.decode(r.k)
	if err != nil {
		r.err = err
		return false
	}
	r.buf, r.k = f.data, r.k+1
	return true
}

func (r *sealedReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if !r.next() {
			return 0, r.err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// WriteTo spares io.Copy a buffer.
func (r *sealedReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for len(r.buf) > 0 || r.next() {
		k, err := w.Write(r.buf)
		n += int64(k)
		r.buf = r.buf[k:]
		if err != nil {
			return n, err
		}
	}
	if r.err == io.EOF {
		return n, nil
	}
	return n, r.err
}

// Tail returns the last n lines (fewer if the stream has fewer, or if
// they are more than MaxLines or hold more than MaxLinesBytes: then the
// last ones that fit).
func (s *Sealed) Tail(n int) ([]Line, error) {
	if n < 0 {
		return nil, fmt.Errorf("tasklog: tail of %d lines", n)
	}
	n = min(n, MaxLines)
	from := max(0, s.tot.Lines-int64(n))
	if x := s.tot.Bytes - int64(s.maxLines()); n > 0 && x > 0 {
		line, start, err := s.lineOfByte(x)
		if err != nil {
			return nil, err
		}
		if !start {
			line++
		}
		if line >= s.tot.Lines {
			return nil, fmt.Errorf("tasklog: the last line, over %d bytes: %w", s.maxLines(), ErrTooLarge)
		}
		from = max(from, line)
	}
	return s.Lines(from, n)
}

// lineOfByte is the number of the line holding stream byte off, and
// whether off is its first byte.
func (s *Sealed) lineOfByte(off int64) (int64, bool, error) {
	k := s.frameOf(off)
	f, err := s.frame(k)
	if err != nil {
		return 0, false, err
	}
	pos := int(off - s.idx[k].rawOff)
	j := sort.SearchInts(f.starts, pos+1) // lines started at or before pos
	line := s.idx[k].firstLine + int64(j)
	if !s.idx[k].cont {
		line--
	}
	return line, j > 0 && f.starts[j-1] == pos, nil
}

// Lines returns n lines from line from (fewer at the stream's end, and at
// most MaxLines), each with its time and offset, copied. If they would
// hold more than MaxLinesBytes it returns the ones before that, or
// ErrTooLarge if the first alone does.
func (s *Sealed) Lines(from int64, n int) ([]Line, error) {
	if from < 0 || n < 0 {
		return nil, fmt.Errorf("tasklog: %d lines from line %d", n, from)
	}
	if n == 0 || from >= s.tot.Lines {
		return nil, nil
	}
	n = min(n, MaxLines)
	// The last frame whose first byte is in line from or before; back
	// from there while the frame only continues line from.
	k := sort.Search(len(s.idx), func(k int) bool { return s.idx[k].firstLine > from }) - 1
	for k > 0 && s.idx[k].cont && s.idx[k].firstLine == from {
		k--
	}
	var out []Line
	var cur Line
	have, size := false, 0
	for ; k < len(s.idx); k++ {
		f, err := s.frame(k)
		if err != nil {
			return nil, err
		}
		e := s.idx[k]
		j := -1 // the bytes before the first start continue a line
		if !e.cont {
			j = 0
		}
		for ; j < len(f.starts); j++ {
			lo, hi := 0, len(f.data)
			if j >= 0 {
				lo = f.starts[j]
			}
			if j+1 < len(f.starts) {
				hi = f.starts[j+1]
			}
			line := e.firstLine + int64(j)
			if e.cont {
				line++
			}
			switch {
			case line < from:
				continue
			case j >= 0:
				cur, have = Line{At: unixNano(f.times[j]), Offset: e.rawOff + int64(lo)}, true
			case !have:
				continue
			}
			if size+hi-lo > s.maxLines() {
				if len(out) > 0 {
					return out, nil
				}
				return nil, fmt.Errorf("tasklog: line %d, over %d bytes: %w", from, s.maxLines(), ErrTooLarge)
			}
			cur.Data = append(cur.Data, f.data[lo:hi]...)
			size += hi - lo
			if endsLine(cur.Data) {
				out, have = append(out, cur), false
				if len(out) == n {
					return out, nil
				}
			}
		}
	}
	if have {
		out = append(out, cur)
	}
	return out, nil
}

// Scan calls fn with every line of the stream in order, from line 0, each
// with its number, time and offset, and stops at the first error fn
// returns (Scan returns it as is). It decodes one frame at a time, past
// the cache, so that it holds a frame and one line's first limit bytes
// whatever the log's size: Data is the line's first limit bytes at most
// (limit ≤ 0: MaxLinesBytes), so a longer line's Data lacks its end (and
// its '\n'). Data is valid only during the call.
func (s *Sealed) Scan(limit int, fn func(i int64, l Line) error) error {
	if limit <= 0 {
		limit = s.maxLines()
	}
	var cur Line
	var buf []byte
	have, i := false, int64(0)
	emit := func() error {
		if !have {
			return nil
		}
		have = false
		cur.Data = buf
		err := fn(i, cur)
		i++
		return err
	}
	add := func(p []byte) {
		if n := limit - len(buf); n > 0 {
			buf = append(buf, p[:min(n, len(p))]...)
		}
	}
	for k := range s.idx {
		f, err := s.decode(k)
		if err != nil {
			return err
		}
		e := s.idx[k]
		if e.cont && len(f.starts) == 0 {
			add(f.data) // the frame only continues a line
			continue
		}
		if e.cont {
			add(f.data[:f.starts[0]])
		}
		for j, lo := range f.starts {
			if err := emit(); err != nil {
				return err
			}
			hi := len(f.data)
			if j+1 < len(f.starts) {
				hi = f.starts[j+1]
			}
			cur, have, buf = Line{At: unixNano(f.times[j]), Offset: e.rawOff + int64(lo)}, true, buf[:0]
			add(f.data[lo:hi])
		}
	}
	return emit()
}
