package tasklog

import (
	"bytes"
	"time"
)

// Line is one line of an attempt's output. Data ends in '\n' unless the
// line is the stream's last and the process never ended it; a '\r' inside
// (a progress bar) is kept as it came.
type Line struct {
	At     time.Time // arrival of its first byte
	Offset int64     // in the stream, of its first byte
	Data   []byte    // read-only: it may alias the holder's buffer
}

// Record is a line or a piece of one, as chunks carry them: a record
// whose Data does not end in '\n' is continued by the next one (in this
// chunk or the next), which carries the same At.
type Record struct {
	At   time.Time
	Data []byte
}

// Source is a whole stream of lines, as Seal reads it: a Writer or a
// Replica.
type Source interface {
	NumLines() int
	Line(i int) Line
}

// lines holds a stream in memory: its bytes and where each line starts.
// Bytes are only ever appended, so a slice handed out stays valid and
// unchanged while the stream grows.
type lines struct {
	buf    []byte
	starts []int64 // offset of each line's first byte
	times  []int64 // each line's time, Unix ns
	open   bool    // the last line has no '\n' yet
}

// add appends p, arriving at at. While the last line is open p continues
// it, whatever at says: a line has its first byte's time.
func (l *lines) add(at int64, p []byte) {
	for len(p) > 0 {
		if !l.open {
			l.starts = append(l.starts, int64(len(l.buf)))
			l.times = append(l.times, at)
			l.open = true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			return
		}
		l.buf = append(l.buf, p[:i+1]...)
		l.open = false
		p = p[i+1:]
	}
}

func (l *lines) line(i int) Line {
	end := int64(len(l.buf))
	if i+1 < len(l.starts) {
		end = l.starts[i+1]
	}
	s := l.starts[i]
	return Line{At: unixNano(l.times[i]), Offset: s, Data: l.buf[s:end:end]}
}

// next is the number of the line the stream's next byte belongs to.
func (l *lines) next() int64 {
	if l.open {
		return int64(len(l.starts)) - 1
	}
	return int64(len(l.starts))
}

// Writer splits an attempt's output into lines as it arrives and keeps
// them in memory. The time comes with the bytes (no clock inside) so that
// what is recorded is when the node read them, and tests are exact. It is
// not safe for concurrent use.
type Writer struct{ l lines }

// Write adds p, which arrived at at (kept to the nanosecond, so between
// the years 1678 and 2262). A line's time is its first byte's: a line
// left open takes the bytes of the next Write whatever their time.
func (w *Writer) Write(at time.Time, p []byte) { w.l.add(at.UnixNano(), p) }

// Len is the stream's length in bytes.
func (w *Writer) Len() int64 { return int64(len(w.l.buf)) }

// NumLines counts the lines, an unended last one too.
func (w *Writer) NumLines() int { return len(w.l.starts) }

// Line returns line i (0 ≤ i < NumLines).
func (w *Writer) Line(i int) Line { return w.l.line(i) }

// Bytes is the stream so far (read-only).
func (w *Writer) Bytes() []byte { return w.l.buf[:len(w.l.buf):len(w.l.buf)] }
