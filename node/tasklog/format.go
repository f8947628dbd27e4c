package tasklog

// The formats of an attempt's log away from its node (issue 17): chunks
// that stream it to other nodes while it runs, and the sealed blob it
// becomes when it ends. Both carry every line's arrival time; the bytes
// are the process's output exactly (masked before they reach this code).
// All integers are little-endian; "uvarint" and "varint" are
// encoding/binary's, varint zigzag-signed.
//
// A line ends at '\n' (kept in its bytes); the last one may lack it. A
// line's time is the arrival of its first byte, in nanoseconds since the
// Unix epoch. Lines are numbered from 0. A record is a line or a piece of
// one: a record whose bytes do not end in '\n' is continued by the next
// one, whose time delta must be 0 (a line has one time).
//
//	record := varint(Δt) uvarint(len ≥ 1) bytes[len]
//
// Δt is the record's time minus the previous record's (in a chunk the
// first record's is from 0, so absolute; in a sealed frame from the
// frame's first time in the index, so 0).
//
// Chunk, version 1: at most ChunkBytes of the stream, cut by a Chunker.
//
//	chunk := u32(n ≤ MaxChunk) body[n] u32(CRC32C(body))
//	body  := u8(version=1) u8(flags: bit 0 final)
//	         uvarint(len(task)) task uvarint(attempt) uvarint(seq)
//	         uvarint(offset) uvarint(line) uvarint(count) record*count
//
// offset is the byte offset in the stream of the chunk's first byte, line
// the number of the line that byte belongs to; if the stream so far ends
// inside a line, the chunk's first record continues it.
//
// Sealed blob, version 1:
//
//	blob   := header frame* index footer
//	header := "OURCILOG" u16(version=1) u16(flags=0)          12 bytes
//	frame  := a zstd frame (with its checksum) of records,
//	          about FrameTarget bytes of them, at most MaxFrame
//	index  := totals entry*frames
//	totals := u64(bytes) u64(lines) i64(first) i64(last)
//	          u32(frames) u32(0)                               40 bytes
//	entry  := u64(zstd offset in blob) u32(zstd length)
//	          u32(records' length) u64(stream offset of its first byte)
//	          u64(line of its first byte) i64(that line's time)
//	          u8(flags: bit 0 its first byte continues a line) 41 bytes
//	footer := u64(index offset) u32(index length)
//	          u32(CRC32C(index)) "OURCIIDX"                    24 bytes
//
// first and last are the first and the last line's times (0 for an empty
// stream). Frames are independent zstd frames so any one decompresses on
// its own: a reader reads the footer, the index, and then only the frames
// a request touches. A line longer than a frame is cut into records
// across frames. Everything the index claims is checked against the
// blob's size and the frame decoded, so a forged blob yields ErrCorrupt,
// and a read allocates what it asks for and a few times MaxFrame at most
// (MaxLinesBytes and MaxLines bound what Lines and Tail return).

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"
)

const (
	// ChunkBytes is the most stream bytes a chunk holds: a Chunker cuts one
	// when that many are pending.
	ChunkBytes = 64 << 10
	// ChunkInterval is how long a Chunker holds the first pending byte
	// before it cuts a chunk anyway (Tick).
	ChunkInterval = time.Second
	// MaxChunk bounds an encoded chunk's body: a decoder refuses more, so
	// a hostile peer cannot make it allocate without bound.
	MaxChunk = 1 << 20
	// FrameTarget is about how many bytes of records a sealed frame holds:
	// small enough that serving a range decompresses little, big enough
	// that zstd finds the repetition in build output.
	FrameTarget = 256 << 10
	// MaxFrame bounds a frame's records; a reader refuses a frame claiming
	// more.
	MaxFrame = 4 << 20
	// maxTask bounds a task ID in a chunk.
	maxTask = 1 << 10
	// maxIndex bounds the index a reader loads (about 400 k frames, 100 GB
	// of output).
	maxIndex = 16 << 20

	chunkVersion  = 1
	sealedVersion = 1
	headerLen     = 12
	totalsLen     = 40
	entryLen      = 41
	footerLen     = 24
	headerMagic   = "OURCILOG"
	footerMagic   = "OURCIIDX"
)

var (
	// ErrCorrupt means chunk or blob bytes are not a well-formed log: cut
	// short, damaged, or forged.
	ErrCorrupt = errors.New("tasklog: corrupt log data")
	// ErrVersion means a chunk or blob of a format version this code does
	// not know.
	ErrVersion = errors.New("tasklog: unknown log format version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends a record whose time is at, the previous one's prev.
func appendRecord(b []byte, prev, at int64, data []byte) []byte {
	b = binary.AppendVarint(b, at-prev)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// decoder reads the fields of a chunk body or a frame's records, keeping
// the first failure so callers check once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next n bytes, aliasing the input.
func (d *decoder) bytes(n uint64, what string) []byte {
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// record reads one record; its length is at least 1.
func (d *decoder) record(prev int64) (int64, []byte) {
	dt := d.varint("record time")
	n := d.uvarint("record length")
	if d.err == nil && n == 0 {
		d.fail("empty record")
	}
	return prev + dt, d.bytes(n, "record bytes")
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }
