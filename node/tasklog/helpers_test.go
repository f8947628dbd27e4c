package tasklog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// arrival is one write of output and when it came.
type arrival struct {
	at time.Time
	p  []byte
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// evenly spaces writes of ps 10 ms apart from t0.
func evenly(ps ...string) []arrival {
	out := make([]arrival, len(ps))
	for i, p := range ps {
		out[i] = arrival{t0.Add(time.Duration(i) * 10 * time.Millisecond), []byte(p)}
	}
	return out
}

// naiveLines is the reference: split the whole stream at '\n', each line
// timed by the write that brought its first byte.
func naiveLines(ws []arrival) []Line {
	var out []Line
	var off int64
	open := false
	for _, w := range ws {
		for _, c := range w.p {
			if !open {
				out = append(out, Line{At: w.at, Offset: off})
				open = true
			}
			l := &out[len(out)-1]
			l.Data = append(l.Data, c)
			off++
			open = c != '\n'
		}
	}
	return out
}

func concat(ws []arrival) []byte {
	var b []byte
	for _, w := range ws {
		b = append(b, w.p...)
	}
	return b
}

func writeAll(ws []arrival) *Writer {
	var w Writer
	for _, a := range ws {
		w.Write(a.at, a.p)
	}
	return &w
}

func sourceLines(s Source) []Line {
	out := make([]Line, s.NumLines())
	for i := range out {
		out[i] = s.Line(i)
	}
	return out
}

// diffLines describes the first difference between got and want, or "".
func diffLines(got, want []Line) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d lines, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) || g.Offset != w.Offset || !bytes.Equal(g.Data, w.Data) {
			return fmt.Sprintf("line %d: got {%s %d %.40q}, want {%s %d %.40q}", i, g.At.Format(time.RFC3339Nano), g.Offset, g.Data, w.At.Format(time.RFC3339Nano), w.Offset, w.Data)
		}
	}
	return ""
}

// edgeCases are the streams every round trip is tried on.
func edgeCases() map[string][]arrival {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16) // 10 MiB, no '\n'
	bin := make([]byte, 300<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(r.UintN(256))
	}
	var tiny []arrival
	for i := range 5000 {
		tiny = append(tiny, arrival{t0.Add(time.Duration(i) * time.Microsecond), []byte{"ab\n\r"[i%4]}})
	}
	return map[string][]arrival{
		"empty":              nil,
		"empty writes":       evenly("", "", ""),
		"one line":           evenly("hello\n"),
		"no trailing nl":     evenly("hello\nworld"),
		"only newlines":      evenly("\n\n\n"),
		"only cr":            evenly("\r\r\r"),
		"progress bars":      evenly("10%\r", "50%\r", "100%\n", "done"),
		"line across writes": evenly("abc", "def", "\nxyz\n"),
		"10 MiB single line": {{t0, big}},
		"10 MiB line plus":   {{t0, []byte("start\n")}, {t0.Add(time.Second), big}, {t0.Add(2 * time.Second), []byte("\nend\n")}},
		"binary":             {{t0, bin}},
		"many tiny writes":   tiny,
		"crlf":               evenly("a\r\nb\r\n", "c\r"),
		"times go back":      {{t0, []byte("a\n")}, {t0.Add(-time.Hour), []byte("b\n")}},
	}
}

// randomArrivals is a random stream of n writes: short lines, long lines,
// partial lines, '\r', binary, bursts at one time and long pauses.
func randomArrivals(r *rand.Rand, n int) []arrival {
	at := t0
	var out []arrival
	for range n {
		at = at.Add(time.Duration(r.Int64N(int64(2 * time.Second))))
		var b strings.Builder
		switch r.IntN(5) {
		case 0:
			b.WriteString(strings.Repeat("x", r.IntN(200<<10)))
		case 1:
			for range r.IntN(50) {
				fmt.Fprintf(&b, "line %d\n", r.IntN(1000))
			}
		case 2:
			b.WriteString("\r" + strings.Repeat("#", r.IntN(80)))
		default:
			for range r.IntN(300) {
				b.WriteByte(byte(r.UintN(256)))
			}
		}
		out = append(out, arrival{at, []byte(b.String())})
	}
	return out
}
