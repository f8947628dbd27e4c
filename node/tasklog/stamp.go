package tasklog

import (
	"fmt"
	"io"
	"os"
)

// StampLayout is the time a stamped line starts with (RFC 3339, UTC, to
// the millisecond), followed by one space.
const StampLayout = "2006-01-02T15:04:05.000Z"

// AppendStamped appends line l as a stamped reader gets it: its arrival
// time, a space, its bytes.
func AppendStamped(b []byte, l Line) []byte {
	b = l.At.UTC().AppendFormat(b, StampLayout)
	b = append(b, ' ')
	return append(b, l.Data...)
}

// WriteStamped writes src's lines from line from on to w, each stamped
// (AppendStamped), and returns the number of the line after the last it
// wrote. An unended last line is written only when final: a follower
// gets it once it ends (or the stream does).
func WriteStamped(w io.Writer, src Source, from int, final bool) (int, error) {
	n := src.NumLines()
	var b []byte
	i := from
	for ; i < n; i++ {
		l := src.Line(i)
		if !final && i == n-1 && !endsLine(l.Data) {
			break
		}
		b = AppendStamped(b, l)
		if len(b) >= 64<<10 {
			if _, err := w.Write(b); err != nil {
				return i + 1, err
			}
			b = b[:0]
		}
	}
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil {
			return i, err
		}
	}
	return i, nil
}

// WriteStamped writes the lines of a log this node writes (or wrote:
// until it is retired), from line from on, stamped; see the function
// WriteStamped. What it writes is what the file held when it was called.
func (l *Log) WriteStamped(w io.Writer, from int, final bool) (int, error) {
	l.wmu.Lock()
	t := lineTimes{starts: l.times.starts[:len(l.times.starts):len(l.times.starts)], at: l.times.at[:len(l.times.at):len(l.times.at)], size: l.times.size, open: l.times.open}
	l.wmu.Unlock()
	f, err := os.Open(l.s.path(l.task, l.attempt))
	if err != nil {
		return from, fmt.Errorf("tasklog: task log: %w", err)
	}
	defer f.Close()
	src := &fileSource{r: f, t: &t}
	next, err := WriteStamped(w, src, from, final)
	if err == nil && src.err != nil {
		err = fmt.Errorf("tasklog: task log: %w", src.err)
	}
	return next, err
}

// Changed returns a channel closed at the log's next write or its end,
// and whether it has ended: a stamped follower waits on it.
func (l *Log) Changed() (<-chan struct{}, bool) { return l.wait() }
