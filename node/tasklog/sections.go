package tasklog

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"
)

// A task marks sections of its log with lines of either convention
// (issue 19):
//
//	::group::TITLE                       GitHub Actions: not nested, a new
//	::endgroup::                         group closes the open one
//
//	section_start:UNIX_TS:NAME[collapsed=true]\r\e[0KTITLE   GitLab: nested,
//	section_end:UNIX_TS:NAME\r\e[0K                          closed by name
//
// ("\r\e[0K" is a carriage return and the escape sequence that clears the
// line, so a terminal shows only TITLE; the options in brackets and the
// title are optional.) A marker may follow ANSI escape sequences and
// carriage returns at the start of its line, and GitLab markers may follow
// one another on one line (an end, then the next start). A GitHub group's
// name is its title. A section_end closes the innermost open section of
// its name and every section opened inside it; one that matches none is
// ignored, as is an ::endgroup:: with no group open. An ::endgroup::
// closes the open group and the sections opened inside it; a ::group::
// closes them at the line before it.
//
// Times are the lines' arrival times, never the markers' UNIX_TS, which
// the task writes and could forge: a section starts when its start line
// came and ends when its end line came (a group closed by the next one:
// when that one came), so its duration is what the mesh saw.
//
// What a log can make of this is bounded: at most MaxSections sections
// (the markers that would start more are ignored, and Truncated says so),
// names and titles cut to MaxSectionName bytes (at a UTF-8 boundary, with
// escape sequences and control characters taken out), markers looked for
// in each line's first SectionLineBytes bytes.
const (
	MaxSections      = 10000
	MaxSectionName   = 200
	SectionLineBytes = 4096
)

// Section styles: which convention marked it.
const (
	StyleGitHub = "github"
	StyleGitLab = "gitlab"
)

// Section is a part of a log between a start marker and its end.
type Section struct {
	Name      string
	Title     string // GitLab: the text after the marker ("" if none); GitHub: the name
	Style     string // StyleGitHub or StyleGitLab
	First     int64  // the start marker's line, numbered from 1
	Last      int64  // the end marker's line (≥ First); of a group closed by the next one, the line before it
	Start     time.Time
	End       time.Time
	Depth     int  // how many sections it is inside
	Open      bool // never closed: it ends at the log's last line, and at that line's time
	Collapsed bool // GitLab's [collapsed=true]
}

// Duration is from the section's start to its end, as the lines came.
func (s Section) Duration() time.Duration { return max(s.End.Sub(s.Start), 0) }

// Sections parses section markers from a log's lines, given in order with
// their times. The zero value is ready to use; it is not safe for
// concurrent use.
type Sections struct {
	out       []Section
	stack     []int          // indices in out of the open sections, outermost first
	names     map[string]int // open GitLab sections by name
	group     int            // the position in stack of the open group, when grouped
	grouped   bool           // a group is open
	lastLine  int64
	lastAt    time.Time
	truncated bool
}

// Line parses line i (numbered from 0) of the log. Only the line's first
// SectionLineBytes bytes are looked at.
func (p *Sections) Line(i int64, l Line) {
	p.lastLine, p.lastAt = i+1, l.At
	b := l.Data[:min(len(l.Data), SectionLineBytes)]
	for {
		b = skipEscapes(b)
		switch {
		case bytes.HasPrefix(b, []byte("::group::")):
			p.closeGroup(i, l.At) // at the line before
			p.open(i, l.At, Section{Name: clean(b[len("::group::"):]), Style: StyleGitHub}, true)
			return
		case bytes.HasPrefix(b, []byte("::endgroup::")):
			if p.grouped {
				p.closeFrom(p.group, i+1, l.At)
			}
			return
		case bytes.HasPrefix(b, []byte("section_start:")):
			name, rest, collapsed, ok := gitlabMarker(b[len("section_start:"):], true)
			if !ok {
				return
			}
			rest = skipEscapes(rest)
			s := Section{Name: name, Style: StyleGitLab, Collapsed: collapsed}
			if !isMarker(rest) {
				s.Title, rest = clean(rest), nil
			}
			p.open(i, l.At, s, false)
			b = rest
		case bytes.HasPrefix(b, []byte("section_end:")):
			name, rest, _, ok := gitlabMarker(b[len("section_end:"):], false)
			if !ok {
				return
			}
			if p.names[name] > 0 {
				for k := len(p.stack) - 1; k >= 0; k-- {
					if s := &p.out[p.stack[k]]; s.Style == StyleGitLab && s.Name == name {
						p.closeFrom(k, i+1, l.At)
						break
					}
				}
			}
			b = rest
		default:
			return
		}
	}
}

// End closes the sections still open at the log's last line and returns
// them all, in the order they started, and whether markers past
// MaxSections were ignored.
func (p *Sections) End() (_ []Section, truncated bool) {
	for k := len(p.stack) - 1; k >= 0; k-- {
		s := &p.out[p.stack[k]]
		s.Last, s.End, s.Open = max(p.lastLine, s.First), p.lastAt, true
	}
	p.stack, p.names, p.grouped = nil, nil, false
	return p.out, p.truncated
}

func (p *Sections) open(i int64, at time.Time, s Section, group bool) {
	if len(p.out) >= MaxSections {
		p.truncated = true
		return
	}
	if s.Style == StyleGitHub {
		s.Title = s.Name
	}
	s.First, s.Start, s.Depth = i+1, at, len(p.stack)
	if group {
		p.group, p.grouped = len(p.stack), true
	} else {
		if p.names == nil {
			p.names = map[string]int{}
		}
		p.names[s.Name]++
	}
	p.stack = append(p.stack, len(p.out))
	p.out = append(p.out, s)
}

// closeGroup closes the open group, if any, and what opened inside it,
// at the line before line i (numbered from 0), at time at.
func (p *Sections) closeGroup(i int64, at time.Time) {
	if p.grouped {
		p.closeFrom(p.group, i, at)
	}
}

// closeFrom closes the sections at stack positions k and up at line last
// (numbered from 1), at time at.
func (p *Sections) closeFrom(k int, last int64, at time.Time) {
	for j := len(p.stack) - 1; j >= k; j-- {
		s := &p.out[p.stack[j]]
		s.Last, s.End = max(last, s.First), at
		if s.Style == StyleGitLab {
			if p.names[s.Name]--; p.names[s.Name] == 0 {
				delete(p.names, s.Name)
			}
		} else {
			p.grouped = false
		}
	}
	p.stack = p.stack[:k]
}

// ParseSections parses the sections of a whole stream in memory.
func ParseSections(src Source) ([]Section, bool) {
	var p Sections
	for i := range src.NumLines() {
		p.Line(int64(i), src.Line(i))
	}
	return p.End()
}

// Sections parses the sealed log's sections (Scan: one frame at a time).
func (s *Sealed) Sections() ([]Section, bool, error) {
	var p Sections
	if err := s.Scan(SectionLineBytes, func(i int64, l Line) error { p.Line(i, l); return nil }); err != nil {
		return nil, false, err
	}
	secs, truncated := p.End()
	return secs, truncated, nil
}

// gitlabMarker reads what follows "section_start:" or "section_end:":
// UNIX_TS ":" NAME, then for a start "[OPTIONS]"; it returns the name
// (cleaned), what follows, and the collapsed option.
func gitlabMarker(b []byte, start bool) (name string, rest []byte, collapsed, ok bool) {
	d := 0
	for d < len(b) && b[d] >= '0' && b[d] <= '9' {
		d++
	}
	if d == 0 || d == len(b) || b[d] != ':' {
		return "", nil, false, false
	}
	b = b[d+1:]
	n := bytes.IndexFunc(b, func(r rune) bool { return r == '[' || r == '\r' || r == '\n' || r == ' ' || r == '\t' || r == 0x1b })
	if n < 0 {
		n = len(b)
	}
	if name = clean(b[:n]); name == "" {
		return "", nil, false, false
	}
	rest = b[n:]
	if start && len(rest) > 0 && rest[0] == '[' {
		if e := bytes.IndexByte(rest, ']'); e > 0 {
			for _, o := range strings.Split(string(rest[1:e]), ",") {
				if k, v, _ := strings.Cut(strings.TrimSpace(o), "="); k == "collapsed" && v == "true" {
					collapsed = true
				}
			}
			rest = rest[e+1:]
		}
	}
	return name, rest, collapsed, true
}

// isMarker reports whether b starts a GitLab marker (another one on the
// same line).
func isMarker(b []byte) bool {
	return bytes.HasPrefix(b, []byte("section_start:")) || bytes.HasPrefix(b, []byte("section_end:"))
}

// skipEscapes skips carriage returns and ANSI escape sequences (CSI
// sequences, and two-byte ones) at the start of b.
func skipEscapes(b []byte) []byte {
	for len(b) > 0 {
		switch {
		case b[0] == '\r':
			b = b[1:]
		case b[0] == 0x1b && len(b) > 1 && b[1] == '[':
			j := 2
			for j < len(b) && b[j] >= 0x30 && b[j] <= 0x3f || j < len(b) && b[j] >= 0x20 && b[j] <= 0x2f {
				j++
			}
			if j == len(b) {
				return b[j:]
			}
			b = b[j+1:] // the final byte
		case b[0] == 0x1b && len(b) > 1:
			b = b[2:]
		default:
			return b
		}
	}
	return b
}

// clean makes a name or title of b: escape sequences and control
// characters out, invalid UTF-8 replaced, spaces trimmed, at most
// MaxSectionName bytes (cut at a character's boundary).
func clean(b []byte) string {
	var out []byte
	for len(b) > 0 && len(out) < MaxSectionName {
		if b[0] == 0x1b {
			n := len(b) - len(skipEscapes(b))
			b = b[max(n, 1):]
			continue
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			if r == '\t' {
				out = append(out, ' ')
			}
			continue
		case r == utf8.RuneError && size == 1:
			r = utf8.RuneError
		}
		if len(out)+utf8.RuneLen(r) > MaxSectionName {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	return strings.TrimSpace(string(out))
}
