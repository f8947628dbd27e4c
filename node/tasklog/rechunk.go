package tasklog

import (
	"fmt"
	"os"
	"sort"
	"time"
)

// A shipper that streams a running attempt to other nodes need not keep
// what it sent in memory until it is acknowledged: the log's file holds
// every byte the tee saw (the tee sees each write as the file gets it,
// masked output and notes alike) and the file's index every line's time,
// so any chunk the Chunker cut can be cut again from the file, identical
// to the first, given where it lay (ChunkBounds: a few dozen bytes).

// ChunkBounds is where a chunk lies in its stream: enough to cut it again
// from the log's file (Log.Rechunk). Offsets count stream bytes (the tee's
// bytes from its start), not file bytes.
type ChunkBounds struct {
	Seq    uint64
	Offset int64 // of its first byte
	End    int64 // past its last byte
	Line   int64 // the line its first byte belongs to (or the next byte's, when empty)
	Final  bool
}

// Bounds are the chunk's bounds.
func (c *Chunk) Bounds() ChunkBounds {
	return ChunkBounds{Seq: c.Seq, Offset: c.Offset, End: c.Offset + c.Len(), Line: c.Line, Final: c.Final}
}

// teeStart is where the stream the latest tee sees begins in the file.
// Its line 0 is file line line0; when the file's last line was open at
// the tee (the stream then begins inside it), the stream's line 0 has its
// own time, the first teed write's (at, once began).
type teeStart struct {
	off   int64
	line0 int
	open  bool
	began bool
	at    int64
}

// startTee records where the stream of tee f begins and returns the tee
// to install (f, or f noting its first write's time). Under l.wmu.
func (l *Log) startTee(f func(at time.Time, p []byte)) func(at time.Time, p []byte) {
	if f == nil {
		return nil // the stream's start stays: its chunks can still be cut again
	}
	st := &teeStart{off: l.times.size, line0: len(l.times.starts), open: l.times.open}
	if st.open {
		st.line0--
		g := f
		f = func(at time.Time, p []byte) {
			if !st.began && len(p) > 0 {
				st.began, st.at = true, at.UnixNano()
			}
			g(at, p)
		}
	}
	l.teed = st
	return f
}

// Rechunk cuts again, from the log's file, the chunk with bounds b of the
// stream the latest Tee (with a non-nil f) saw, cut by a Chunker of this
// log's task and attempt: the same offsets, line, records, times and
// bytes as the first time, so it encodes the same. It works while the
// file is there (until Retire), after Finish too.
func (l *Log) Rechunk(b ChunkBounds) (Chunk, error) {
	c := Chunk{Task: l.task, Attempt: l.attempt, Seq: b.Seq, Offset: b.Offset, Line: b.Line, Final: b.Final}
	l.wmu.Lock()
	st := l.teed
	var start teeStart
	if st != nil {
		start = *st
	}
	// A view of the index as it is (it is only appended to) and the file
	// is written up to size: a write indexes and writes under wmu.
	starts := l.times.starts[:len(l.times.starts):len(l.times.starts)]
	at := l.times.at[:len(l.times.at):len(l.times.at)]
	size := l.times.size
	l.wmu.Unlock()
	switch {
	case st == nil:
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: no tee saw the log", l.task, l.attempt)
	case b.Offset < 0 || b.End < b.Offset || b.Line < 0:
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: bounds %+v", l.task, l.attempt, b)
	case start.off+b.End > size:
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: chunk %d ends at %d, the stream at %d", l.task, l.attempt, b.Seq, b.End, size-start.off)
	case b.End == b.Offset:
		return c, nil
	case start.open && !start.began:
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: the stream's first line has no time", l.task, l.attempt)
	}
	buf := make([]byte, b.End-b.Offset)
	f, err := os.Open(l.s.path(l.task, l.attempt))
	if err != nil {
		return Chunk{}, fmt.Errorf("tasklog: rechunk: %w", err)
	}
	_, err = f.ReadAt(buf, start.off+b.Offset)
	f.Close()
	if err != nil {
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: reading chunk %d: %w", l.task, l.attempt, b.Seq, err)
	}
	// The stream's lines are the file's from line0 on, the first cut
	// where the stream starts.
	lineStart := func(s int) int64 { return max(starts[start.line0+s]-start.off, 0) }
	lineAt := func(s int) int64 {
		if s == 0 && start.open {
			return start.at
		}
		return at[start.line0+s]
	}
	n := len(starts) - start.line0 // the stream's lines so far
	// The last line beginning at or before the chunk's first byte.
	s := sort.Search(n, func(i int) bool { return lineStart(i) > b.Offset }) - 1
	if s < 0 || int64(s) != b.Line {
		return Chunk{}, fmt.Errorf("tasklog: rechunk %s/%d: chunk %d's first byte is on line %d, not %d", l.task, l.attempt, b.Seq, s, b.Line)
	}
	for ; s < n && lineStart(s) < b.End; s++ {
		from, to := max(lineStart(s), b.Offset), b.End
		if s+1 < n {
			to = min(to, lineStart(s+1))
		}
		c.Records = append(c.Records, Record{At: unixNano(lineAt(s)), Data: buf[from-b.Offset : to-b.Offset : to-b.Offset]})
	}
	return c, nil
}
