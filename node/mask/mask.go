package mask

import (
	"encoding/base64"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ourci/ourci/node/auth"
)

// Text replaces a secret in task output.
const Text = "***"

// Writer is an io.Writer that masks credentials in a task's output before
// the bytes reach its log: its own secrets (the task's token, its blob
// capability and BLOB_URL, the topic's --secret-env values) and anything
// shaped like an OurCI credential (scanner). An occurrence may be split
// across writes: a tail that could still become one is held back until the
// next write or Close decides (never more than the longest occurrence can
// span, and nothing when the tail cannot start one).
type Writer struct {
	w  io.Writer
	sc *scanner

	mu      sync.Mutex
	pending []byte
}

// New masks values (empty ones are ignored) in every form the
// scanner knows, and every OurCI token.
func New(w io.Writer, values []string) *Writer {
	return &Writer{w: w, sc: newScanner(values)}
}

func (m *Writer) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw := p
	if len(m.pending) > 0 {
		raw = append(m.pending, p...)
	}
	out, rest := m.sc.mask(raw, false)
	m.pending = append([]byte(nil), rest...)
	if len(out) > 0 {
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close writes what is held back.
func (m *Writer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 {
		return nil
	}
	out, _ := m.sc.mask(m.pending, true)
	m.pending = nil
	_, err := m.w.Write(out)
	return err
}

// All masks a whole text at once (the node's own notes in a log).
func (m *Writer) All(b []byte) []byte {
	out, _ := m.sc.mask(b, true)
	return out
}

// The scanner finds secrets in these forms:
//
//   - modeText: as is, in any ASCII case, with any byte percent-encoded
//     (%xx, either case; and '+' for a space, as a query string has it);
//   - modeHex: hex-encoded, in either case;
//   - modeB64: base64, standard or URL alphabet, padded or not, at any of
//     the three alignments a secret can have inside a longer encoded text;
//   - modeExact: byte for byte (only for values the other modes could
//     misread: with a '%' or an escape character).
//
// Between two units of an occurrence it skips up to maxSkip ANSI escape
// sequences (a colourised `set -x`, grep --color, an inserted \x1b[31m)
// and, in hex and base64, line breaks (base64 and xxd -p wrap their
// output) and, in hex, the separators of hex dumps (space, ':', tab). A
// token is one of tokenPrefixes followed by at least one character of a
// token ([A-Za-z0-9._-]); its occurrence is masked up to maxTokenBody
// characters past the prefix. There is no look-behind: whether an
// occurrence starts at a byte never depends on the bytes before it, so
// the output does not depend on how the text was split into writes.
type mode uint8

const (
	modeExact mode = iota
	modeText
	modeHex
	modeB64
)

const (
	maxSkip      = 8    // escape sequences and separators between two units
	skipBudget   = 1024 // bytes skipped in one occurrence, at most
	maxCSIParams = 32   // parameter bytes of one CSI sequence
	maxCSIInter  = 4    // intermediate bytes of one CSI sequence
	maxOSC       = 100  // payload bytes of one OSC sequence
	maxTokenBody = 200  // decoded bytes of a token after its prefix
	// maxTokenB64 bounds a base64 token's body: the longest token OurCI
	// makes is about 110 bytes past its prefix. Base64 runs on across line
	// breaks, so an encoded token that ends a line takes the start of the
	// next one with it, up to this bound.
	maxTokenB64 = 4*112/3 + 4
	minEncoded  = 4 // shorter values are masked as text only
	esc         = 0x1b
)

// target is one thing the scanner looks for.
type target struct {
	mode  mode
	lit   []byte // text, hex: the decoded bytes, folded; b64: the characters (standard alphabet); exact: the bytes
	token bool   // lit is a token's prefix: a body of token characters follows
	trail int    // b64: characters after lit that still hold bits of the value, masked with lit if there (and '=' padding)
	// next holds the bytes that may follow the first byte of an
	// occurrence (a quick test before matching; all true if any may).
	next [256]bool
}

type scanner struct {
	targets []target
	start   [256]bool     // raw bytes an occurrence may start with
	first   [256][]uint16 // raw byte → the targets an occurrence starting with it may be
	body    [4]*[256]bool // mode → the units a token's body is made of
	maxSpan int           // no occurrence spans more bytes: the most a masker holds back
}

// newScanner looks for every token and for values.
func newScanner(values []string) *scanner {
	sc := &scanner{body: [4]*[256]bool{modeText: &tokenChars, modeHex: &tokenChars, modeB64: &b64Chars}}
	for _, p := range auth.TokenPrefixes {
		sc.add(target{mode: modeText, lit: []byte(p), token: true})
		sc.add(target{mode: modeHex, lit: []byte(p), token: true})
		for _, v := range []string{p, strings.ToUpper(p)} {
			for _, in := range b64Inner(v) {
				sc.add(target{mode: modeB64, lit: []byte(in.chars), token: true})
			}
		}
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		sc.add(target{mode: modeText, lit: foldBytes(v)})
		if strings.ContainsAny(v, "%\x1b") {
			sc.add(target{mode: modeExact, lit: []byte(v)})
		}
		if len(v) < minEncoded {
			continue
		}
		sc.add(target{mode: modeHex, lit: foldBytes(v)})
		for _, in := range b64Inner(v) {
			sc.add(target{mode: modeB64, lit: []byte(in.chars), trail: in.trail})
		}
	}
	return sc
}

func (sc *scanner) add(t target) {
	for _, u := range sc.targets {
		if u.mode == t.mode && u.token == t.token && string(u.lit) == string(t.lit) {
			return
		}
	}
	i := uint16(len(sc.targets))
	sc.targets = append(sc.targets, t)
	var starts []byte
	c := t.lit[0]
	switch t.mode {
	case modeExact:
		starts = []byte{c}
	case modeText:
		starts = []byte{c, upper(c), '%'}
		if c == ' ' {
			starts = append(starts, '+')
		}
	case modeHex:
		for _, v := range []byte{c, upper(c)} {
			starts = append(starts, hexDigits[v>>4], upper(hexDigits[v>>4]))
		}
	case modeB64:
		starts = []byte{c}
		switch c {
		case '+':
			starts = append(starts, '-')
		case '/':
			starts = append(starts, '_')
		}
	}
	for _, s := range starts {
		sc.start[s] = true
		if !slices.Contains(sc.first[s], i) {
			sc.first[s] = append(sc.first[s], i)
		}
	}
	sc.targets[i].next = nextBytes(t)
	units := len(t.lit)
	if t.token {
		units += maxTokenBody
	}
	sc.maxSpan = max(sc.maxSpan, 3*units+skipBudget)
}

// nextBytes is what may follow an occurrence's first byte, when that byte
// is a unit of its own (not the '%' of an escape).
func nextBytes(t target) [256]bool {
	var next [256]bool
	set := func(bs ...byte) {
		for _, b := range bs {
			next[b] = true
		}
	}
	switch {
	case t.mode == modeHex:
		for _, v := range []byte{t.lit[0], upper(t.lit[0])} {
			set(hexDigits[v&15], upper(hexDigits[v&15]))
		}
		set(esc, ' ', ':', '\t', '\r', '\n')
	case len(t.lit) < 2:
		for i := range next {
			next[i] = true
		}
	case t.mode == modeExact:
		set(t.lit[1])
	case t.mode == modeText:
		c := t.lit[1]
		set(c, upper(c), '%', esc)
		if c == ' ' {
			set('+')
		}
	case t.mode == modeB64:
		c := t.lit[1]
		set(c, esc, '\r', '\n')
		switch c {
		case '+':
			set('-')
		case '/':
			set('_')
		}
	}
	return next
}

// maskSpan is a masked range [start, end) of a text.
type maskSpan struct{ start, end int }

// scan finds the occurrences in b. Unless final, more bytes may follow b:
// hold is then where the earliest occurrence starts that they could
// complete or lengthen (len(b) if none), and only occurrences before hold
// are reported. Spans are sorted and disjoint (overlapping ones merged;
// adjacent ones are kept apart, so two secrets in a row show as two masks).
func (sc *scanner) scan(b []byte, final bool) (spans []maskSpan, hold int) {
	hold = len(b)
	c := cursor{b: b, final: final}
	for i := 0; i < hold; i++ {
		if !sc.start[b[i]] {
			continue
		}
		for _, ti := range sc.first[b[i]] {
			t := &sc.targets[ti]
			if i+1 < len(b) && b[i] != '%' && !t.next[b[i+1]] {
				continue
			}
			c.m, c.skipped = t.mode, 0
			end, st := sc.match(&c, i, t)
			switch st {
			case done:
				spans = append(spans, maskSpan{i, end})
			case more:
				hold = i
			}
		}
	}
	slices.SortFunc(spans, func(a, b maskSpan) int { return a.start - b.start })
	merged := spans[:0]
	for _, s := range spans {
		if n := len(merged); n > 0 && s.start < merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged, hold
}

// mask returns b with its occurrences masked, up to where it must hold
// back (see scan; never inside an occurrence), and the rest of b, held.
func (sc *scanner) mask(b []byte, final bool) (out, rest []byte) {
	spans, cut := sc.scan(b, final)
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].start < cut && cut < spans[i].end {
			cut = spans[i].start
		}
	}
	if len(spans) == 0 || spans[0].start >= cut {
		return b[:cut], b[cut:]
	}
	out = make([]byte, 0, cut)
	at := 0
	for _, s := range spans {
		if s.start >= cut {
			break
		}
		out = append(out, b[at:s.start]...)
		out = sc.keepColours(out, b[s.start:s.end])
		out = append(out, Text...)
		at = s.end
	}
	return append(out, b[at:cut]...), b[cut:]
}

// keepColours appends the CSI sequences (colours, cursor moves) inside a
// masked occurrence, so that the text after it keeps its colour; a
// sequence that itself holds a secret is dropped.
func (sc *scanner) keepColours(out, occ []byte) []byte {
	for j := 0; j < len(occ); j++ {
		if occ[j] != esc || j+1 >= len(occ) || occ[j+1] != '[' {
			continue
		}
		e, st := ansiLen(occ, j, true)
		if st != done {
			continue
		}
		if spans, _ := sc.scan(occ[j:e], true); len(spans) == 0 {
			out = append(out, occ[j:e]...)
		}
		j = e - 1
	}
	return out
}

type status uint8

const (
	fail status = iota // no occurrence here
	done               // an occurrence, complete
	more               // the text ends before it is known
)

func endStatus(final bool) status {
	if final {
		return fail
	}
	return more
}

// cursor reads units of one mode from a text.
type cursor struct {
	b       []byte
	final   bool
	m       mode
	skipped int
}

// want is what a unit must decode to: the byte c, or one of class.
type want struct {
	c     byte
	class *[256]bool
}

func (w want) ok(v byte) bool {
	if w.class != nil {
		return w.class[v]
	}
	return v == w.c
}

func (sc *scanner) match(c *cursor, i int, t *target) (int, status) {
	j := i
	var st status
	for k, ch := range t.lit {
		if k > 0 {
			if j, st = c.skip(j); st == more {
				return j, more
			}
		}
		if j, st = c.unit(j, want{c: ch}); st != done {
			return j, st
		}
	}
	if !t.token {
		if t.mode == modeB64 {
			return c.b64Tail(j, t.trail)
		}
		return j, done
	}
	limit := maxTokenBody
	if t.mode == modeB64 {
		limit = maxTokenB64
	}
	w := want{class: sc.body[t.mode]}
	n := 0
	for ; n < limit; n++ {
		k, st := c.skip(j)
		if st == more {
			return k, more
		}
		k, st = c.unit(k, w)
		if st == more {
			return k, more
		}
		if st == fail {
			break
		}
		j = k
	}
	if n == 0 {
		return j, fail
	}
	if t.mode == modeB64 {
		return c.b64Tail(j, 0)
	}
	return j, done
}

// b64Tail extends a base64 occurrence ending at j over up to trail more
// characters (the last bits of the value, mixed with what follows it) and
// the '=' padding after them, where they are.
func (c *cursor) b64Tail(j, trail int) (int, status) {
	w := want{class: &b64Chars}
	for range trail {
		k, st := c.skip(j)
		if st == more {
			return k, more
		}
		if k, st = c.unit(k, w); st == more {
			return k, more
		} else if st == fail {
			return j, done
		}
		j = k
	}
	for range 2 {
		if j >= len(c.b) {
			if !c.final {
				return j, more
			}
			break
		}
		if c.b[j] != '=' {
			break
		}
		j++
	}
	return j, done
}

// unit reads one unit at j that w accepts and returns where it ends.
func (c *cursor) unit(j int, w want) (int, status) {
	b, n := c.b, len(c.b)
	if j >= n {
		return j, endStatus(c.final)
	}
	ch := b[j]
	switch c.m {
	case modeExact:
		if w.ok(ch) {
			return j + 1, done
		}
	case modeText:
		if ch == '%' {
			switch {
			case j+1 >= n:
				if !c.final {
					return j, more
				}
			case isHex(b[j+1]) && j+2 >= n:
				if !c.final {
					return j, more
				}
			case isHex(b[j+1]) && isHex(b[j+2]):
				if w.ok(fold(hexVal(b[j+1])<<4 | hexVal(b[j+2]))) {
					return j + 3, done
				}
			}
		}
		if ch != esc && w.ok(fold(ch)) {
			return j + 1, done
		}
		if ch == '+' && w.ok(' ') {
			return j + 1, done
		}
	case modeHex:
		if !isHex(ch) {
			return j, fail
		}
		k, st := c.skip(j + 1)
		if st == more {
			return k, more
		}
		if k >= n {
			return k, endStatus(c.final)
		}
		if isHex(b[k]) && w.ok(fold(hexVal(ch)<<4|hexVal(b[k]))) {
			return k + 1, done
		}
	case modeB64:
		if v := b64Norm(ch); v != 0 && w.ok(v) {
			return j + 1, done
		}
	}
	return j, fail
}

// skip passes over up to maxSkip escape sequences (and separators: hex and
// base64) at j.
func (c *cursor) skip(j int) (int, status) {
	if c.m == modeExact {
		return j, done
	}
	for range maxSkip {
		e, st := c.skipItem(j)
		if st == more {
			return j, more
		}
		if st == fail || c.skipped+e-j > skipBudget {
			break
		}
		c.skipped += e - j
		j = e
	}
	return j, done
}

func (c *cursor) skipItem(j int) (int, status) {
	if j >= len(c.b) {
		return j, fail // the unit that follows says whether more is needed
	}
	switch ch := c.b[j]; {
	case ch == esc:
		return ansiLen(c.b, j, c.final)
	case c.m == modeHex && (ch == ' ' || ch == ':' || ch == '\t' || ch == '\r' || ch == '\n'):
		return j + 1, done
	case c.m == modeB64 && (ch == '\r' || ch == '\n'):
		return j + 1, done
	}
	return j, fail
}

// ansiLen reads the escape sequence at b[j] (an ESC): CSI (ESC [ params
// intermediates final), OSC (ESC ] payload BEL or ESC \), or a two- or
// three-byte one, and returns where it ends.
func ansiLen(b []byte, j int, final bool) (int, status) {
	n := len(b)
	if j+1 >= n {
		return j, endStatus(final)
	}
	switch c := b[j+1]; {
	case c == '[':
		k := j + 2
		for p := 0; ; k, p = k+1, p+1 {
			if k >= n {
				return j, endStatus(final)
			}
			if b[k] < 0x30 || b[k] > 0x3f {
				break
			}
			if p == maxCSIParams {
				return j, fail
			}
		}
		for p := 0; ; k, p = k+1, p+1 {
			if k >= n {
				return j, endStatus(final)
			}
			if b[k] < 0x20 || b[k] > 0x2f {
				break
			}
			if p == maxCSIInter {
				return j, fail
			}
		}
		if b[k] >= 0x40 && b[k] <= 0x7e {
			return k + 1, done
		}
		return j, fail
	case c == ']':
		for k, p := j+2, 0; p <= maxOSC; k, p = k+1, p+1 {
			if k >= n {
				return j, endStatus(final)
			}
			switch b[k] {
			case 0x07:
				return k + 1, done
			case esc:
				if k+1 >= n {
					return j, endStatus(final)
				}
				if b[k+1] == '\\' {
					return k + 2, done
				}
				return j, fail
			}
		}
		return j, fail
	case c >= 0x40 && c <= 0x5f:
		return j + 2, done
	case c >= 0x20 && c <= 0x2f:
		if j+2 >= n {
			return j, endStatus(final)
		}
		if b[j+2] >= 0x30 && b[j+2] <= 0x7e {
			return j + 3, done
		}
	}
	return j, fail
}

const hexDigits = "0123456789abcdef"

var tokenChars, b64Chars [256]bool

func init() {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyz0123456789._-") {
		tokenChars[c] = true
	}
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		b64Chars[c] = true
	}
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func fold(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func foldBytes(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		b[i] = fold(c)
	}
	return b
}

// b64Norm maps a base64 character of either alphabet to the standard one
// (0: not one).
func b64Norm(c byte) byte {
	switch {
	case b64Chars[c]:
		return c
	case c == '-':
		return '+'
	case c == '_':
		return '/'
	}
	return 0
}

// b64Part is the part of a value's base64 encoding that depends on its
// bytes alone, and how many characters after it still hold some of them.
type b64Part struct {
	chars string
	trail int
}

// b64Inner returns, for each of the three alignments v can have in a
// longer text, the base64 characters that depend on v's bytes alone (so
// they appear whatever surrounds v), if there are at least minEncoded.
func b64Inner(v string) []b64Part {
	var out []b64Part
	for a := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, a), v...))
		bits := 8 * (a + len(v))
		from, to := (8*a+5)/6, bits/6
		if to-from >= minEncoded {
			p := b64Part{chars: enc[from:to]}
			if bits%6 != 0 {
				p.trail = 1
			}
			out = append(out, p)
		}
	}
	return out
}
