package tasklog

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

const benchBytes = 8 << 20

// The ratio sealed build output achieves (logged; the floor only catches
// a broken compressor, not a worse level).
func TestCompressionRatio(t *testing.T) {
	w := writeAll(buildArrivals(benchBytes))
	start := time.Now()
	blob, info := seal(t, w)
	took := time.Since(start)
	ratio := float64(info.Bytes) / float64(len(blob))
	t.Logf("build output: %d bytes, %d lines, %d frames -> %d bytes sealed: ratio %.2f, %.0f MB/s",
		info.Bytes, info.Lines, info.Frames, len(blob), ratio, float64(info.Bytes)/took.Seconds()/1e6)
	if ratio < 4 {
		t.Errorf("ratio %.2f on build output, want at least 4", ratio)
	}
}

func BenchmarkWrite(b *testing.B) {
	in := buildArrivals(benchBytes)
	lines := writeAll(in).NumLines()
	b.SetBytes(benchBytes)
	b.ReportAllocs()
	for b.Loop() {
		writeAll(in)
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// The sending side's whole path: chunks cut and encoded, applied to the
// replica the sender keeps.
func BenchmarkChunkerToReplica(b *testing.B) {
	in := buildArrivals(benchBytes)
	b.SetBytes(benchBytes)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		c, r := NewChunker("t", 1), NewReplica("t", 1)
		for _, a := range in {
			if ch, ok := c.Tick(a.at); ok {
				buf, _ = ch.AppendBinary(buf[:0])
				r.Apply(ch)
			}
			for _, ch := range c.Write(a.at, a.p) {
				buf, _ = ch.AppendBinary(buf[:0])
				r.Apply(ch)
			}
		}
		r.Apply(c.Close())
	}
}

func BenchmarkSeal(b *testing.B) {
	w := writeAll(buildArrivals(benchBytes))
	var blob bytes.Buffer
	b.SetBytes(benchBytes)
	b.ReportAllocs()
	for b.Loop() {
		blob.Reset()
		if _, err := Seal(&blob, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.NumLines())*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(w.Len())/float64(blob.Len()), "ratio")
}

// Reading back: a raw download, and opening for a tail as a server does
// per request.
func BenchmarkSealedRead(b *testing.B) {
	var blob bytes.Buffer
	Seal(&blob, writeAll(buildArrivals(benchBytes)))
	b.Run("download", func(b *testing.B) {
		b.SetBytes(benchBytes)
		for b.Loop() {
			s, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, s.Reader())
		}
	})
	b.Run("open+tail100", func(b *testing.B) {
		for b.Loop() {
			s, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Tail(100); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// What the zstd levels give on 256 KiB frames of build output: the
// evidence for the level Seal uses.
func BenchmarkSealLevels(b *testing.B) {
	recs := []byte(buildOutput(benchBytes))
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
		b.Run(lv.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(recs)))
			var n int
			var out []byte
			for b.Loop() {
				n = 0
				for p := recs; len(p) > 0; {
					k := min(len(p), FrameTarget)
					out = enc.EncodeAll(p[:k], out[:0])
					n += len(out)
					p = p[k:]
				}
			}
			b.ReportMetric(float64(len(recs))/float64(n), "ratio")
		})
	}
}
