package web

import (
	"bufio"
	"bytes"
	"errors"
	"html/template"
	"io"
	"time"

	"github.com/ourci/ourci/node/api"
)

// stampLayout is a stamped log line's time (node/tasklog StampLayout):
// RFC 3339, UTC, to the millisecond. Pages show times the same way.
const stampLayout = "2006-01-02T15:04:05.000Z"

// LogLine is a line of a finished task's log as its page shows it: an
// element with the id L<N> and a link to itself.
type LogLine struct {
	N    int
	At   string        // its arrival (stampLayout), "" when not known
	HTML template.HTML // its text rendered by ANSI (escaped), without the '\n'
}

// rawLine is a line read from a log: its time (zero: unknown) and bytes.
type rawLine struct {
	at   time.Time
	data []byte
}

// readLines reads a log's lines, stamped (each after its time and a
// space) or plain, up to maxLines lines and limit bytes of output (the
// stamps not counted): truncated says more followed. A line that does not
// start with a time, in a stamped log, is kept as it is with none.
func readLines(r io.Reader, stamped bool, maxLines, limit int) (lines []rawLine, truncated bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	total, start := 0, true
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			if start {
				if len(lines) == maxLines {
					return lines, true, nil
				}
				var l rawLine
				if n := len(stampLayout); stamped && len(frag) > n && frag[n] == ' ' {
					if at, perr := time.Parse(stampLayout, string(frag[:n])); perr == nil {
						l.at, frag = at, frag[n+1:]
					}
				}
				lines, start = append(lines, l), false
			}
			cur := &lines[len(lines)-1]
			if room := limit - total; len(frag) > room {
				cur.data = append(cur.data, frag[:room]...)
				return lines, true, nil
			}
			cur.data = append(cur.data, frag...)
			total += len(frag)
			start = frag[len(frag)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return lines, false, nil
		case err != nil:
			return lines, false, err
		}
	}
}

// renderLines renders lines for the page, numbered from 1, colours
// carried from one line to the next as a terminal does.
func renderLines(lines []rawLine) []LogLine {
	out := make([]LogLine, len(lines))
	var ren ANSI
	for i, l := range lines {
		data := bytes.TrimSuffix(l.data, []byte("\n"))
		out[i] = LogLine{N: i + 1, HTML: template.HTML(ren.Render(data) + ren.Flush())}
		if !l.at.IsZero() {
			out[i].At = l.at.UTC().Format(stampLayout)
		}
	}
	return out
}

// SectionRow is a section of a log in its page's table.
type SectionRow struct {
	Name  string
	Title string // when it says more than the name
	First int64
	Last  int64
	Depth int // capped, for the indent
	Dur   string
	Start string
	Open  bool
}

// maxDepthShown bounds a section's indent in the table.
const maxDepthShown = 12

func sectionRows(s api.LogSections) []SectionRow {
	out := make([]SectionRow, len(s.Sections))
	for i, sc := range s.Sections {
		r := SectionRow{Name: sc.Name, First: sc.FirstLine, Last: sc.LastLine, Depth: min(sc.Depth, maxDepthShown),
			Dur: FormatDuration(sc.Duration()), Start: sc.Start.UTC().Format(stampLayout), Open: sc.Open}
		if r.Name == "" {
			r.Name = "(unnamed)"
		}
		if sc.Title != sc.Name {
			r.Title = sc.Title
		}
		out[i] = r
	}
	return out
}
