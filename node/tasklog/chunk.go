package tasklog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Chunk is a stretch of a running attempt's output on its way to other
// nodes (the layout is in format.go). Seq counts an attempt's chunks from
// 0; Offset is the stream offset of its first byte and Line the number of
// the line that byte belongs to, so a receiver can tell one that does not
// follow on. Final marks the attempt's last chunk (possibly without
// records).
type Chunk struct {
	Task    string
	Attempt int
	Seq     uint64
	Offset  int64
	Line    int64
	Final   bool
	Records []Record
}

// Len is the number of stream bytes the chunk carries.
func (c *Chunk) Len() int64 {
	var n int64
	for _, r := range c.Records {
		n += int64(len(r.Data))
	}
	return n
}

// AppendBinary appends the chunk's encoding to b.
func (c *Chunk) AppendBinary(b []byte) ([]byte, error) {
	switch {
	case len(c.Task) > maxTask:
		return b, fmt.Errorf("tasklog: chunk of a task ID of %d bytes", len(c.Task))
	case c.Attempt < 0 || c.Offset < 0 || c.Line < 0:
		return b, fmt.Errorf("tasklog: chunk with a negative attempt, offset or line: %d %d %d", c.Attempt, c.Offset, c.Line)
	}
	start := len(b)
	b = append(b, 0, 0, 0, 0, chunkVersion, 0)
	if c.Final {
		b[start+5] = 1
	}
	b = binary.AppendUvarint(b, uint64(len(c.Task)))
	b = append(b, c.Task...)
	b = binary.AppendUvarint(b, uint64(c.Attempt))
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendUvarint(b, uint64(c.Offset))
	b = binary.AppendUvarint(b, uint64(c.Line))
	b = binary.AppendUvarint(b, uint64(len(c.Records)))
	var prev int64
	for i, r := range c.Records {
		at := r.At.UnixNano()
		switch {
		case len(r.Data) == 0:
			return b[:start], fmt.Errorf("tasklog: chunk %d has an empty record", c.Seq)
		case i > 0 && at != prev && !endsLine(c.Records[i-1].Data):
			return b[:start], fmt.Errorf("tasklog: chunk %d: record %d continues a line at another time", c.Seq, i)
		}
		b = appendRecord(b, prev, at, r.Data)
		prev = at
	}
	n := len(b) - start - 4
	if n > MaxChunk {
		return b[:start], fmt.Errorf("tasklog: chunk %d encodes to %d bytes, past %d", c.Seq, n, MaxChunk)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(n))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start+4:], castagnoli)), nil
}

// MarshalBinary encodes the chunk.
func (c *Chunk) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// UnmarshalBinary decodes exactly one chunk; its records' Data alias b.
func (c *Chunk) UnmarshalBinary(b []byte) error {
	d, n, err := DecodeChunk(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("tasklog: %d bytes after the chunk: %w", len(b)-n, ErrCorrupt)
	}
	*c = d
	return nil
}

// DecodeChunk decodes the chunk at the front of b and says how many bytes
// it took, so chunks can be sent back to back. Its records' Data alias b.
func DecodeChunk(b []byte) (Chunk, int, error) {
	if len(b) < 4 {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk: %d bytes, short of its length: %w", len(b), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxChunk {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk claims %d bytes, past %d: %w", n, MaxChunk, ErrCorrupt)
	}
	if uint64(len(b)) < 8+uint64(n) {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk of %d bytes cut short at %d: %w", n, len(b), ErrCorrupt)
	}
	body := b[4 : 4+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4+n:]) {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk checksum: %w", ErrCorrupt)
	}
	if len(body) < 2 {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk body of %d bytes: %w", len(body), ErrCorrupt)
	}
	if body[0] != chunkVersion {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk version %d: %w", body[0], ErrVersion)
	}
	if body[1]&^1 != 0 {
		return Chunk{}, 0, fmt.Errorf("tasklog: chunk flags %#x: %w", body[1], ErrCorrupt)
	}
	c, err := decodeChunkBody(body[2:])
	if err != nil {
		return Chunk{}, 0, err
	}
	c.Final = body[1]&1 != 0
	return c, int(8 + n), nil
}

func decodeChunkBody(b []byte) (Chunk, error) {
	d := decoder{b: b}
	var c Chunk
	tl := d.uvarint("task length")
	if tl > maxTask {
		d.fail("task length")
	}
	c.Task = string(d.bytes(tl, "task"))
	attempt := d.uvarint("attempt")
	c.Seq = d.uvarint("seq")
	off, line := d.uvarint("offset"), d.uvarint("line")
	count := d.uvarint("record count")
	switch {
	case d.err != nil:
	case attempt > math.MaxInt32 || off > math.MaxInt64 || line > off:
		d.fail("attempt, offset or line out of range")
	case count > uint64(len(d.b))/3: // a record takes at least 3 bytes
		d.fail("record count")
	}
	c.Attempt, c.Offset, c.Line = int(attempt), int64(off), int64(line)
	if d.err == nil && count > 0 {
		c.Records = make([]Record, 0, count)
	}
	var prev int64
	for i := uint64(0); i < count && d.err == nil; i++ {
		at, data := d.record(prev)
		if d.err == nil && i > 0 && prev != at && !endsLine(c.Records[i-1].Data) {
			d.fail("a line's records with different times")
		}
		c.Records = append(c.Records, Record{At: unixNano(at), Data: data})
		prev = at
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("bytes after the records")
	}
	if d.err != nil {
		return Chunk{}, fmt.Errorf("tasklog: chunk: %s: %w", d.err, ErrCorrupt)
	}
	return c, nil
}

func endsLine(p []byte) bool { return len(p) > 0 && p[len(p)-1] == '\n' }
