package tasklog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Totals sum up a sealed stream.
type Totals struct {
	Bytes  int64     // of output, as the process wrote it
	Lines  int64     // an unended last one too
	First  time.Time // the first line's time (zero for an empty stream)
	Last   time.Time // the last line's time
	Frames int
}

// SealInfo is what the ledger records of a sealed log (raftfsm.LogRef):
// the blob's SHA-256 in hex and size, and the stream's totals.
type SealInfo struct {
	Hash string
	Size int64
	Totals
}

// encoder is shared: EncodeAll is safe for concurrent use. Its level is
// "better": a log is sealed once and then kept on several nodes for the
// retention. On generated build output (BenchmarkSeal, on a shared
// 2-core machine) it seals at 7.9:1 and 70-90 MB/s a core, the default
// level at 7.05:1 and about 235 MB/s; "best" would be a sixth as fast
// again for 10% more (BenchmarkSealLevels).
var encoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderCRC(true))
})

// Seal writes the whole stream src as a sealed blob to w (layout in
// format.go). Every line but the last must end in '\n' and none may be
// empty, as a Writer or Replica holds them.
func Seal(w io.Writer, src Source) (SealInfo, error) { return sealFrames(w, src, FrameTarget) }

// sealFrames seals with frames of about target bytes of records (tests
// use small ones, to cross many frames with few bytes).
func sealFrames(w io.Writer, src Source, target int) (SealInfo, error) {
	enc, err := encoder()
	if err != nil {
		return SealInfo{}, fmt.Errorf("tasklog: zstd: %w", err)
	}
	s := &sealer{enc: enc, h: sha256.New(), target: target}
	s.w = io.MultiWriter(w, s.h)
	s.write(binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16([]byte(headerMagic), sealedVersion), 0))
	n := src.NumLines()
	for i := range n {
		l := src.Line(i)
		if len(l.Data) == 0 || i+1 < n && !endsLine(l.Data) {
			return SealInfo{}, fmt.Errorf("tasklog: seal: line %d of %d is empty or unended", i, n)
		}
		at := l.At.UnixNano()
		if i == 0 {
			s.tot.First = unixNano(at)
		}
		s.tot.Last = unixNano(at)
		s.line(int64(i), at, l.Data)
	}
	s.flush()
	s.tot.Lines = int64(n)
	s.tot.Frames = len(s.idx)
	s.writeIndex()
	if s.err != nil {
		return SealInfo{}, fmt.Errorf("tasklog: seal: %w", s.err)
	}
	return SealInfo{Hash: hex.EncodeToString(s.h.Sum(nil)), Size: s.off, Totals: s.tot}, nil
}

// entry is a frame's line in the index.
type entry struct {
	compOff   int64
	compLen   uint32
	recLen    uint32
	rawOff    int64
	firstLine int64
	firstTime int64
	cont      bool
}

type sealer struct {
	target int
	enc    *zstd.Encoder
	w      io.Writer
	h      hash.Hash
	off    int64 // blob bytes written
	err    error

	rec   []byte // the records of the frame being filled
	fr    entry  // and its index entry
	prev  int64  // its last record's time
	comp  []byte
	raw   int64 // stream bytes so far
	ended bool  // the stream so far ends with '\n'
	idx   []entry
	tot   Totals
}

func (s *sealer) write(p []byte) {
	if s.err != nil {
		return
	}
	_, s.err = s.w.Write(p)
	s.off += int64(len(p))
}

// line adds line i, cutting it across frames where a frame fills.
func (s *sealer) line(i, at int64, data []byte) {
	for len(data) > 0 {
		if len(s.rec) == 0 {
			s.fr = entry{rawOff: s.raw, firstLine: i, firstTime: at, cont: s.raw > 0 && !s.ended}
			s.prev = at
		}
		room := s.target - len(s.rec) - 2*binary.MaxVarintLen64
		if room < 1 {
			s.flush()
			continue
		}
		k := min(room, len(data))
		s.rec = appendRecord(s.rec, s.prev, at, data[:k])
		s.prev = at
		s.raw += int64(k)
		s.ended = endsLine(data[:k])
		if data = data[k:]; len(data) > 0 {
			s.flush()
		}
	}
	s.tot.Bytes = s.raw
}

func (s *sealer) flush() {
	if len(s.rec) == 0 {
		return
	}
	s.comp = s.enc.EncodeAll(s.rec, s.comp[:0])
	s.fr.compOff, s.fr.compLen, s.fr.recLen = s.off, uint32(len(s.comp)), uint32(len(s.rec))
	s.idx = append(s.idx, s.fr)
	s.write(s.comp)
	s.rec = s.rec[:0]
}

func (s *sealer) writeIndex() {
	b := make([]byte, 0, totalsLen+entryLen*len(s.idx))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.tot.Bytes))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.tot.Lines))
	b = binary.LittleEndian.AppendUint64(b, uint64(nanos(s.tot.First)))
	b = binary.LittleEndian.AppendUint64(b, uint64(nanos(s.tot.Last)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.idx)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, e := range s.idx {
		b = binary.LittleEndian.AppendUint64(b, uint64(e.compOff))
		b = binary.LittleEndian.AppendUint32(b, e.compLen)
		b = binary.LittleEndian.AppendUint32(b, e.recLen)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.rawOff))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.firstLine))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.firstTime))
		var flags byte
		if e.cont {
			flags = 1
		}
		b = append(b, flags)
	}
	f := binary.LittleEndian.AppendUint64(nil, uint64(s.off))
	f = binary.LittleEndian.AppendUint32(f, uint32(len(b)))
	f = binary.LittleEndian.AppendUint32(f, crc32.Checksum(b, castagnoli))
	f = append(f, footerMagic...)
	s.write(b)
	s.write(f)
}

// nanos is t in Unix ns, 0 for the zero time (an empty stream's).
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
