package tasklog

import (
	"errors"
	"fmt"
	"sync"
)

var (
	// ErrGap means a chunk came before one it follows (a *GapError says
	// which Seq the replica wants).
	ErrGap = errors.New("tasklog: a chunk is missing before this one")
	// ErrDiscontinuous means a chunk's offset, line or first record does
	// not follow on from what the replica holds, or a repeated Seq came
	// with other bytes: the sender and the replica disagree.
	ErrDiscontinuous = errors.New("tasklog: chunk does not follow on")
	// ErrOtherAttempt means a chunk of another task or attempt.
	ErrOtherAttempt = errors.New("tasklog: chunk of another attempt")
	// ErrEnded means a chunk past the attempt's final one.
	ErrEnded = errors.New("tasklog: chunk after the final one")
)

// GapError is a chunk that came ahead of its turn: the replica wants Want
// first (the sender resends from there). It matches ErrGap.
type GapError struct{ Want, Got uint64 }

func (e *GapError) Error() string {
	return fmt.Sprintf("tasklog: chunk %d came before chunk %d", e.Got, e.Want)
}

func (e *GapError) Is(target error) bool { return target == ErrGap }

// Replica is a node's copy of another node's running attempt, built from
// its chunks in order: what readers get if that node dies, and what is
// sealed if it dies before it sealed. A Replica is safe for concurrent
// use; a chunk applies whole or not at all.
type Replica struct {
	task    string
	attempt int

	mu     sync.Mutex
	l      lines
	starts []int64 // stream offset of each chunk applied, and of the end
	done   bool
}

// NewReplica holds the output of the attempt of task.
func NewReplica(task string, attempt int) *Replica {
	return &Replica{task: task, attempt: attempt, starts: []int64{0}}
}

// Apply adds chunk c. A Seq applied before is a no-op (chunks may be sent
// twice), a later one than the next is a *GapError, and one whose offset
// or line does not follow on is ErrDiscontinuous.
func (r *Replica) Apply(c Chunk) error {
	if c.Task != r.task || c.Attempt != r.attempt {
		return fmt.Errorf("tasklog: chunk of %s/%d for %s/%d: %w", c.Task, c.Attempt, r.task, r.attempt, ErrOtherAttempt)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := uint64(len(r.starts) - 1)
	switch {
	case c.Seq < next:
		if c.Offset != r.starts[c.Seq] || c.Len() != r.starts[c.Seq+1]-r.starts[c.Seq] {
			return fmt.Errorf("tasklog: chunk %d again, at %d+%d, first at %d+%d: %w", c.Seq, c.Offset, c.Len(), r.starts[c.Seq], r.starts[c.Seq+1]-r.starts[c.Seq], ErrDiscontinuous)
		}
		return nil
	case r.done:
		return fmt.Errorf("tasklog: chunk %d after the final %d: %w", c.Seq, next-1, ErrEnded)
	case c.Seq > next:
		return &GapError{Want: next, Got: c.Seq}
	case c.Offset != int64(len(r.l.buf)) || c.Line != r.l.next():
		return fmt.Errorf("tasklog: chunk %d at byte %d line %d, the replica at %d line %d: %w", c.Seq, c.Offset, c.Line, len(r.l.buf), r.l.next(), ErrDiscontinuous)
	}
	// Check every record before adding any, so a bad chunk changes nothing.
	open := r.l.open
	var lineAt int64
	if open {
		lineAt = r.l.times[len(r.l.times)-1]
	}
	for i, rec := range c.Records {
		at := rec.At.UnixNano()
		switch {
		case len(rec.Data) == 0:
			return fmt.Errorf("tasklog: chunk %d: record %d is empty: %w", c.Seq, i, ErrCorrupt)
		case open && at != lineAt:
			return fmt.Errorf("tasklog: chunk %d: record %d continues a line at another time: %w", c.Seq, i, ErrDiscontinuous)
		case !open:
			lineAt = at
		}
		open = !endsLine(rec.Data)
	}
	for _, rec := range c.Records {
		r.l.add(rec.At.UnixNano(), rec.Data)
	}
	r.starts = append(r.starts, int64(len(r.l.buf)))
	r.done = c.Final
	return nil
}

// Next is the Seq the replica wants next.
func (r *Replica) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.starts) - 1)
}

// Done says whether the final chunk came: the replica holds the whole
// stream.
func (r *Replica) Done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Len is how many bytes of the stream the replica holds.
func (r *Replica) Len() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.l.buf))
}

// NumLines counts the lines it holds, an unended last one too.
func (r *Replica) NumLines() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.l.starts)
}

// Line returns line i (0 ≤ i < NumLines) as it stands: a last line still
// open may grow in a later chunk.
func (r *Replica) Line(i int) Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.line(i)
}

// Bytes is the stream it holds so far (read-only: bytes are only ever
// appended, so the slice stays valid).
func (r *Replica) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.buf[:len(r.l.buf):len(r.l.buf)]
}
