package web

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ANSI renders terminal output as HTML, a chunk at a time: SGR colour and
// bold codes become spans with classes (f30–f37, f90–f97 foreground,
// g40–g47, g100–g107 background, b bold), every other escape sequence and
// control character but newline and tab is dropped, and all text is
// HTML-escaped. State (the current colours, an escape sequence or a UTF-8
// character cut by a chunk boundary) carries over from one chunk to the
// next; each rendered chunk is complete HTML on its own (spans it opens, it
// closes). The zero value is ready to use.
type ANSI struct {
	fg, bg int // 0: the default
	bold   bool
	st     parseState
	params []byte // of the CSI sequence being read
	tail   []byte // an incomplete UTF-8 character at the end of the last chunk
}

type parseState uint8

const (
	stText   parseState = iota
	stEsc               // after ESC
	stCSI               // ESC [ ...
	stOSC               // ESC ] ... (until BEL or ESC \)
	stOSCEsc            // ESC inside an OSC
	stSkip1             // ESC ( and the like: one more byte
)

// maxParams bounds a CSI sequence's parameters; longer ones are garbage.
const maxParams = 64

// Pending is how many bytes of the input so far have not been rendered
// yet (an incomplete UTF-8 character).
func (a *ANSI) Pending() int { return len(a.tail) }

// Render renders the next chunk of output.
func (a *ANSI) Render(p []byte) string {
	var out strings.Builder
	var span spanState // the span open in out
	var text []byte    // text not yet written to out
	emit := func() {
		if len(text) == 0 {
			return
		}
		want := spanState{a.fg, a.bg, a.bold}
		if want != span {
			if span.open() {
				out.WriteString("</span>")
			}
			if want.open() {
				out.WriteString(`<span class="`)
				out.WriteString(want.classes())
				out.WriteString(`">`)
			}
			span = want
		}
		escapeTo(&out, text)
		text = text[:0]
	}
	if len(a.tail) > 0 {
		p = append(a.tail[:len(a.tail):len(a.tail)], p...)
		a.tail = nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch a.st {
		case stText:
			switch {
			case c == 0x1b:
				a.st = stEsc
			case c == '\n' || c == '\t':
				text = append(text, c)
			case c < 0x20 || c == 0x7f:
				// other control characters (\r, \b, BEL...) are dropped
			case c < utf8.RuneSelf:
				text = append(text, c)
			default:
				if !utf8.FullRune(p[i:]) {
					a.tail = append([]byte(nil), p[i:]...)
					i = len(p)
					break
				}
				r, size := utf8.DecodeRune(p[i:])
				if r == utf8.RuneError && size == 1 {
					text = utf8.AppendRune(text, utf8.RuneError)
				} else {
					text = append(text, p[i:i+size]...)
				}
				i += size - 1
			}
		case stEsc:
			switch c {
			case '[':
				a.st, a.params = stCSI, a.params[:0]
			case ']':
				a.st = stOSC
			case '(', ')', '*', '+', '#', '%':
				a.st = stSkip1
			default:
				a.st = stText
			}
		case stCSI:
			switch {
			case c >= 0x30 && c <= 0x3f:
				if len(a.params) < maxParams {
					a.params = append(a.params, c)
				}
			case c >= 0x20 && c <= 0x2f:
				// intermediate bytes: ignored
			case c >= 0x40 && c <= 0x7e:
				a.st = stText
				if c == 'm' {
					emit() // text before the change keeps the old colours
					a.sgr(string(a.params))
				}
			default:
				a.st = stText // malformed: give up on the sequence
			}
		case stOSC:
			switch c {
			case 0x07:
				a.st = stText
			case 0x1b:
				a.st = stOSCEsc
			}
		case stOSCEsc:
			a.st = stText
		case stSkip1:
			a.st = stText
		}
	}
	emit()
	if span.open() {
		out.WriteString("</span>")
	}
	return out.String()
}

// sgr applies Select Graphic Rendition parameters.
func (a *ANSI) sgr(params string) {
	if params == "" {
		params = "0"
	}
	if strings.ContainsAny(params, "<=>?") {
		return // private sequences are not SGR
	}
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		if strings.Contains(ps[i], ":") {
			continue // 38:5:n and the like: colours we do not show
		}
		v := 0
		if ps[i] != "" {
			n, err := strconv.Atoi(ps[i])
			if err != nil {
				continue
			}
			v = n
		}
		switch {
		case v == 0:
			a.fg, a.bg, a.bold = 0, 0, false
		case v == 1:
			a.bold = true
		case v == 22:
			a.bold = false
		case v >= 30 && v <= 37, v >= 90 && v <= 97:
			a.fg = v
		case v == 39:
			a.fg = 0
		case v >= 40 && v <= 47, v >= 100 && v <= 107:
			a.bg = v
		case v == 49:
			a.bg = 0
		case v == 38 || v == 48:
			// extended colours: 5;n or 2;r;g;b follow; skip them
			if i+1 < len(ps) {
				switch ps[i+1] {
				case "5":
					i += 2
				case "2":
					i += 4
				default:
					i++
				}
			}
		}
	}
}

type spanState struct {
	fg, bg int
	bold   bool
}

func (s spanState) open() bool { return s != spanState{} }

func (s spanState) classes() string {
	var c []string
	if s.fg != 0 {
		c = append(c, "f"+strconv.Itoa(s.fg))
	}
	if s.bg != 0 {
		c = append(c, "g"+strconv.Itoa(s.bg))
	}
	if s.bold {
		c = append(c, "b")
	}
	return strings.Join(c, " ")
}

// escapeTo writes text HTML-escaped.
func escapeTo(out *strings.Builder, text []byte) {
	last := 0
	for i, c := range text {
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		default:
			continue
		}
		out.Write(text[last:i])
		out.WriteString(esc)
		last = i + 1
	}
	out.Write(text[last:])
}

// Flush ends the output so far: an incomplete UTF-8 character it holds
// back is rendered as U+FFFD (a line rendered on its own ends there).
func (a *ANSI) Flush() string {
	if len(a.tail) == 0 {
		return ""
	}
	a.tail = nil
	return "\ufffd"
}

// RenderANSI renders a whole output at once.
func RenderANSI(s string) string {
	var a ANSI
	out := a.Render([]byte(s))
	if a.Pending() > 0 {
		out += "\ufffd"
	}
	return out
}
