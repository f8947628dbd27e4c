package tasklog

import (
	"bytes"
	"sync"
	"time"
)

// Chunker cuts a running attempt's output into chunks for other nodes: a
// chunk as soon as ChunkBytes are pending, another once the first pending
// byte has waited ChunkInterval (the caller calls Tick by Due), and a
// final one at Close. It keeps only what is pending, so the sender keeps
// the whole stream by applying its own chunks to a Replica. Times come
// from the caller. A Chunker is safe for concurrent use.
type Chunker struct {
	mu      sync.Mutex
	task    string
	attempt int
	seq     uint64
	off     int64 // stream bytes already cut into chunks
	line    int64 // lines begun so far, an open one too
	open    bool  // the stream ends inside a line
	openAt  int64 // that line's time
	closed  *Chunk

	// What is pending: the bytes, where each record starts in them, when
	// the first came and the line it belongs to.
	buf      []byte
	recs     []pendingRecord
	firstAt  time.Time
	pendLine int64
}

type pendingRecord struct {
	at    int64
	start int
}

// NewChunker cuts the output of the attempt of task.
func NewChunker(task string, attempt int) *Chunker {
	return &Chunker{task: task, attempt: attempt}
}

// Write adds p, which arrived at at, and returns the chunks that filled
// up (usually none). After Close it drops p.
func (c *Chunker) Write(at time.Time, p []byte) []Chunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != nil {
		return nil
	}
	var out []Chunk
	for len(p) > 0 {
		k := min(ChunkBytes-len(c.buf), len(p))
		c.add(at, p[:k])
		p = p[k:]
		if len(c.buf) == ChunkBytes {
			out = append(out, c.cut(false))
		}
	}
	return out
}

func (c *Chunker) add(at time.Time, p []byte) {
	if len(c.buf) == 0 {
		c.firstAt, c.pendLine = at, c.nextLine()
	}
	ns := at.UnixNano()
	for len(p) > 0 {
		switch {
		case !c.open:
			c.line++
			c.open, c.openAt = true, ns
			c.recs = append(c.recs, pendingRecord{ns, len(c.buf)})
		case len(c.recs) == 0: // the line began in an earlier chunk
			c.recs = append(c.recs, pendingRecord{c.openAt, len(c.buf)})
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.buf = append(c.buf, p...)
			return
		}
		c.buf = append(c.buf, p[:i+1]...)
		c.open = false
		p = p[i+1:]
	}
}

func (c *Chunker) nextLine() int64 {
	if c.open {
		return c.line - 1
	}
	return c.line
}

// cut makes a chunk of what is pending; the chunk owns its bytes.
func (c *Chunker) cut(final bool) Chunk {
	ch := Chunk{Task: c.task, Attempt: c.attempt, Seq: c.seq, Offset: c.off, Line: c.pendLine, Final: final}
	if len(c.buf) == 0 {
		ch.Line = c.nextLine()
	}
	if len(c.recs) > 0 {
		ch.Records = make([]Record, len(c.recs))
	}
	for i, r := range c.recs {
		end := len(c.buf)
		if i+1 < len(c.recs) {
			end = c.recs[i+1].start
		}
		ch.Records[i] = Record{At: unixNano(r.at), Data: c.buf[r.start:end:end]}
	}
	c.seq++
	c.off += int64(len(c.buf))
	c.buf, c.recs = nil, nil
	return ch
}

// Due says when Tick will cut the pending bytes, if any are pending.
func (c *Chunker) Due() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) == 0 || c.closed != nil {
		return time.Time{}, false
	}
	return c.firstAt.Add(ChunkInterval), true
}

// Tick cuts a chunk of the pending bytes if the first of them came
// ChunkInterval or more before now.
func (c *Chunker) Tick(now time.Time) (Chunk, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) == 0 || c.closed != nil || now.Sub(c.firstAt) < ChunkInterval {
		return Chunk{}, false
	}
	return c.cut(false), true
}

// Close ends the stream: it returns the final chunk, with whatever was
// pending. Calling it again returns the same chunk (a receiver ignores a
// repeated Seq).
func (c *Chunker) Close() Chunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == nil {
		ch := c.cut(true)
		c.closed = &ch
	}
	return *c.closed
}
