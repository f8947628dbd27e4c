package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/auth"
)

// maskWrites runs writes through a masker and returns what reached its
// writer, after Close.
func maskWrites(t testing.TB, values []string, writes ...string) string {
	t.Helper()
	var buf bytes.Buffer
	m := New(&buf, values)
	for _, w := range writes {
		if n, err := m.Write([]byte(w)); err != nil || n != len(w) {
			t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(w))
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.String()
}

// byteByByte splits s into one write per byte.
func byteByByte(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}

// percentAll percent-encodes every byte of s, in upper or lower case.
func percentAll(s string, upperCase bool) string {
	var b strings.Builder
	for i := range len(s) {
		h := fmt.Sprintf("%%%02x", s[i])
		if upperCase {
			h = strings.ToUpper(h)
		}
		b.WriteString(h)
	}
	return b.String()
}

// wrap breaks s into lines of n characters, as base64 and xxd -p do.
func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func TestMasker(t *testing.T) {
	secret := "hunter2-s3cr3t"
	special := "p@ss w/rd&=x!"
	long := strings.Repeat("0123456789abcdefghij", 5) // wraps in base64 and xxd -p
	values := []string{secret, special, long, ""}
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name, in, want string
	}{
		{"whole", "token=" + secret + "\n", "token=***\n"},
		{"twice", secret + secret, "******"},
		{"prefix only, at the end", "xx" + secret[:6], "xx" + secret[:6]},
		{"nothing secret", "plain line\nanother\n", "plain line\nanother\n"},
		{"upper case", "X " + strings.ToUpper(secret) + " Y", "X *** Y"},
		{"mixed case", "X HuNtEr2-S3CR3T Y", "X *** Y"},
		{"hex, lower", "h=" + hex.EncodeToString([]byte(secret)) + ";", "h=***;"},
		{"hex, upper", "h=" + strings.ToUpper(hex.EncodeToString([]byte(secret))) + ";", "h=***;"},
		{"hex, xxd -p wrapped", wrap(hex.EncodeToString([]byte(long)), 60) + "\n", "***\n"},
		{"hex, spaced pairs (od)", " 68 75 6e 74 65 72 32 2d 73 33 63 72 33 74\n", " ***\n"},
		{"URL query escape", "?p=" + url.QueryEscape(special) + "&q=1", "?p=***&q=1"},
		{"URL path escape", "/a/" + url.PathEscape(special) + "/b", "/a/***/b"},
		{"percent-encoded, lower", "u=" + percentAll(secret, false) + ".", "u=***."},
		{"percent-encoded, upper", "u=" + percentAll(secret, true) + ".", "u=***."},
		{"base64", "auth: " + b64([]byte(secret)) + "\n", "auth: ***\n"},
		{"base64, URL alphabet", "auth: " + base64.RawURLEncoding.EncodeToString([]byte(special)) + "\n", "auth: ***\n"},
		{"base64 of a longer text, offset 1", b64([]byte("k" + secret + "\n")), b64([]byte("k" + secret + "\n"))[:2] + "***" + b64([]byte("k" + secret + "\n"))[20:]},
		{"base64 of a longer text, offset 2", b64([]byte("k=" + secret)), b64([]byte("k=" + secret))[:3] + "***"},
		{"base64, wrapped at 76", wrap(b64([]byte(long)), 76) + "\n", "***\n"},
		{"split by a colour", secret[:4] + "\x1b[31m" + secret[4:] + "\n", "\x1b[31m***\n"},
		{"split by grep --color", "x" + secret[:2] + "\x1b[01;31m\x1b[K" + secret[2:9] + "\x1b[m\x1b[K" + secret[9:] + "y", "x\x1b[01;31m\x1b[K\x1b[m\x1b[K***y"},
		{"split by an OSC title", secret[:4] + "\x1b]0;title\x07" + secret[4:], "***"},
		{"hex split by a colour", hex.EncodeToString([]byte(secret))[:7] + "\x1b[1m" + hex.EncodeToString([]byte(secret))[7:], "\x1b[1m***"},
		{"colour around it is kept", "\x1b[32mok " + secret + "\x1b[0m\n", "\x1b[32mok ***\x1b[0m\n"},
		{"too many escapes in a row", secret[:4] + strings.Repeat("\x1b[m", 9) + secret[4:], secret[:4] + strings.Repeat("\x1b[m", 9) + secret[4:]},
		{"a sha256 is no secret", "sha256:" + strings.Repeat("ab12", 16) + "\n", "sha256:" + strings.Repeat("ab12", 16) + "\n"},
	}
	for _, tt := range tests {
		if got := maskWrites(t, values, tt.in); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if got := maskWrites(t, values, byteByByte(tt.in)...); got != tt.want {
			t.Errorf("%s, byte by byte: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestMaskerTokens: anything shaped like an OurCI credential is masked,
// whoever's it is, in every form.
func TestMaskerTokens(t *testing.T) {
	s, _ := auth.ParseSecret("ourci-secret-v1:" + strings.Repeat("7e", 32))
	op, _ := s.OperatorToken(auth.RoleOperate, time.Time{})
	tokens := map[string]string{
		"cluster":         s.ClusterToken(),
		"task":            s.TaskToken("0123456789ab", 2),
		"operator":        op,
		"blob capability": s.BlobToken("ba9876543210", "0123456789ab", 1),
		"cluster secret":  s.String(),
	}
	for kind, tok := range tokens {
		forms := map[string]string{
			"as is":            tok,
			"upper case":       strings.ToUpper(tok),
			"hex":              hex.EncodeToString([]byte(tok)),
			"hex, upper":       strings.ToUpper(hex.EncodeToString([]byte(tok))),
			"percent-encoded":  percentAll(tok, true),
			"base64":           base64.StdEncoding.EncodeToString([]byte(tok)),
			"base64, offset 1": base64.StdEncoding.EncodeToString([]byte("=" + tok)),
			"base64, offset 2": base64.URLEncoding.EncodeToString([]byte("T=" + tok)),
			"base64, wrapped":  wrap(base64.StdEncoding.EncodeToString([]byte("TOKEN="+tok+"\n")), 76),
			"in a URL":         "http://127.0.0.1:7380/v1/blob/" + tok + "/fw.bin",
			"split by colours": tok[:5] + "\x1b[1;31m" + tok[5:12] + "\x1b[0m" + tok[12:],
		}
		for form, text := range forms {
			in := "before " + text + " after\n"
			for _, writes := range [][]string{{in}, byteByByte(in)} {
				got := maskWrites(t, nil, writes...)
				mac := tok[strings.LastIndexAny(tok, ".:")+1:]
				if strings.Contains(got, text) || strings.Contains(strings.ToLower(got), mac[:16]) || !strings.HasPrefix(got, "before ") || !strings.HasSuffix(got, " after\n") || !strings.Contains(got, Text) {
					t.Errorf("%s token, %s (%d writes): got %q, want it masked between before and after", kind, form, len(writes), got)
				}
			}
		}
	}
	for _, plain := range []string{
		"ourci-node spawn -t ourci/build/docker -- ci/all.sh\n",
		"the token looks like ourci-t1. and nothing follows\n",
		"see https://github.com/ourci/ourci-node\n",
	} {
		if got := maskWrites(t, nil, plain); got != plain {
			t.Errorf("no token: got %q, want %q unchanged", got, plain)
		}
	}
}

// TestMaskerHoldsBackOnlyWhatMayBeASecret: output that cannot start a
// secret reaches the log at once; a tail that may is held, never longer
// than the longest occurrence, and released once it is decided.
func TestMaskerHoldsBackOnlyWhatMayBeASecret(t *testing.T) {
	var buf bytes.Buffer
	m := New(&buf, []string{"hunter2-s3cr3t"})
	m.Write([]byte("compiling main.c\n"))
	if got := buf.String(); got != "compiling main.c\n" {
		t.Errorf("after a plain line: got %q in the log, want it all", got)
	}
	m.Write([]byte("key=hunt"))
	if got := buf.String(); got != "compiling main.c\nkey=" {
		t.Errorf("after a secret's prefix: got %q in the log, want the prefix held", got)
	}
	m.Write([]byte("ing season\n"))
	if got := buf.String(); got != "compiling main.c\nkey=hunting season\n" {
		t.Errorf("once the prefix is no secret: got %q", got)
	}
	tok := "ourci-t1.0123456789ab.1." + strings.Repeat("ab", 60)
	m.Write([]byte("tok=" + tok))
	if got := buf.String(); got != "compiling main.c\nkey=hunting season\ntok=" {
		t.Errorf("while a token may go on: got %q in the log, want the token held", got)
	}
	if len(m.pending) > m.sc.maxSpan {
		t.Errorf("held back %d bytes, more than the longest occurrence (%d)", len(m.pending), m.sc.maxSpan)
	}
	m.Write([]byte(" ok\n"))
	if got := buf.String(); got != "compiling main.c\nkey=hunting season\ntok=*** ok\n" {
		t.Errorf("once the token ended: got %q", got)
	}
	long := "ourci-t1." + strings.Repeat("ab", maxTokenBody)
	m.Write([]byte(long))
	m.Close()
	if got, want := buf.String(), "compiling main.c\nkey=hunting season\ntok=*** ok\n***"+long[len("ourci-t1.")+maxTokenBody:]; got != want {
		t.Errorf("a token longer than the longest masked: got %q, want %q", got, want)
	}
}

func TestMaskerNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	m := New(&buf, nil)
	m.Write([]byte("passes straight through"))
	if buf.String() != "passes straight through" {
		t.Errorf("got %q", buf.String())
	}
}

// refPattern is an independent statement of what the scanner finds, as a
// regular expression (for 7-bit text): the differential fuzz target
// checks that both agree on every input. refPattern(nil) finds the
// tokens; refPattern(values) the values (it is compiled far faster).
func refPattern(values []string) *regexp.Regexp {
	const (
		ansi     = `(?:\x1b\[[0-?]{0,32}[ -/]{0,4}[@-~]|\x1b\][^\x07\x1b]{0,100}(?:\x07|\x1b\\)|\x1b[@-Z\\^_]|\x1b[ -/][0-~])`
		textSkip = `(?:` + ansi + `){0,8}`
		hexSkip  = `(?:` + ansi + `|[ :\t\r\n]){0,8}`
		b64Skip  = `(?:` + ansi + `|[\r\n]){0,8}`
	)
	variants := func(c byte) []byte { // the bytes that fold to c
		if 'a' <= c && c <= 'z' {
			return []byte{c, c - 32}
		}
		return []byte{c}
	}
	digit := func(d byte) string { // a hex digit, either case
		h := hexDigits[d]
		if h >= 'a' {
			return "[" + string(h) + string(h-32) + "]"
		}
		return string(h)
	}
	textUnit := func(c byte) string {
		var alts []string
		for _, v := range variants(c) {
			alts = append(alts, regexp.QuoteMeta(string(v)), "%"+digit(v>>4)+digit(v&15))
		}
		if c == ' ' {
			alts = append(alts, `\+`)
		}
		return "(?:" + strings.Join(alts, "|") + ")"
	}
	hexUnit := func(c byte) string {
		var alts []string
		for _, v := range variants(c) {
			alts = append(alts, digit(v>>4)+hexSkip+digit(v&15))
		}
		return "(?:" + strings.Join(alts, "|") + ")"
	}
	b64Unit := func(c byte) string {
		switch c {
		case '+':
			return `[+\-]`
		case '/':
			return `[/_]`
		}
		return regexp.QuoteMeta(string(c))
	}
	seq := func(s string, unit func(byte) string, skip string) string {
		parts := make([]string, len(s))
		for i := range len(s) {
			parts[i] = unit(s[i])
		}
		return strings.Join(parts, skip)
	}
	class := func(unit func(byte) string) string {
		var alts []string
		for _, c := range []byte("abcdefghijklmnopqrstuvwxyz0123456789._-") {
			alts = append(alts, unit(c))
		}
		return "(?:" + strings.Join(alts, "|") + ")"
	}
	var alts []string
	for _, p := range auth.TokenPrefixes {
		if values != nil {
			break // the tokens' pattern is refPattern(nil)
		}
		alts = append(alts, seq(p, textUnit, textSkip)+textSkip+class(textUnit))
		alts = append(alts, seq(p, hexUnit, hexSkip)+hexSkip+class(hexUnit))
		for _, v := range []string{p, strings.ToUpper(p)} {
			for a := range 3 {
				enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", a) + v))
				in := enc[(8*a+5)/6 : 8*(a+len(v))/6]
				alts = append(alts, seq(in, b64Unit, b64Skip)+b64Skip+`[A-Za-z0-9+/\-_]`)
			}
		}
	}
	for _, v := range values {
		alts = append(alts, seq(strings.ToLower(v), textUnit, textSkip))
		if len(v) < minEncoded {
			continue
		}
		alts = append(alts, seq(strings.ToLower(v), hexUnit, hexSkip))
		for a := range 3 {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", a) + v))
			if in := enc[(8*a+5)/6 : 8*(a+len(v))/6]; len(in) >= minEncoded {
				alts = append(alts, seq(in, b64Unit, b64Skip))
			}
		}
	}
	return regexp.MustCompile(strings.Join(alts, "|"))
}

// fuzzSecret makes a value the reference can state: printable ASCII
// without '%' (a literal '%' is matched byte for byte, which the
// reference does not model) and without '*' (the mask itself).
func fuzzSecret(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 40; i++ {
		if c := s[i]&0x7f | 0x20; c != '%' && c != '*' && c != 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// refTokens is the reference pattern of the tokens, compiled once.
var refTokens struct {
	once sync.Once
	re   *regexp.Regexp
}

// refCache keeps the last patterns of values (compiling one takes tens of
// milliseconds, and the fuzzer mutates the text far more often).
var refCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

func refValues(secret string) *regexp.Regexp {
	refCache.Lock()
	defer refCache.Unlock()
	if re, ok := refCache.m[secret]; ok {
		return re
	}
	if len(refCache.m) >= 256 || refCache.m == nil {
		refCache.m = map[string]*regexp.Regexp{}
	}
	re := refPattern([]string{secret})
	refCache.m[secret] = re
	return re
}

// FuzzMask: for any text (7-bit, with a form of a secret or token put in at
// some place), the scanner finds an occurrence exactly when the reference
// pattern does; the masked output holds none; text with none passes
// unchanged; and the output is the same however the text is split into
// writes.
func FuzzMask(f *testing.F) {
	f.Add([]byte("plain log line\n"), "hunter2-s3cr3t", uint8(0), uint16(3), uint8(1))
	f.Add([]byte("\x1b[1;31merror\x1b[0m: 6f75 %41 b3VyY2kt ourci-t1.\n"), "p@ss w/rd", uint8(3), uint16(9), uint8(5))
	f.Add([]byte("key="), "s3cr3t-deploy-key", uint8(6), uint16(4), uint8(2))
	f.Add([]byte("x\r\n"), "short", uint8(9), uint16(1), uint8(7))
	f.Add([]byte("\x1b]0;t\x07\x1b(B\x1b[?25l"), "ourci", uint8(11), uint16(0), uint8(3))
	f.Fuzz(func(t *testing.T, text []byte, secret string, form uint8, at uint16, chunk uint8) {
		if len(text) > 256 {
			text = text[:256]
		}
		for i := range text {
			text[i] &= 0x7f
		}
		secret = fuzzSecret(secret)
		var values []string
		if secret != "" {
			values = []string{secret}
		}
		tok := "ourci-t1.0123456789ab.1." + hex.EncodeToString([]byte(secret+"mac"))
		forms := []string{
			"", secret, strings.ToUpper(secret), hex.EncodeToString([]byte(secret)), strings.ToUpper(hex.EncodeToString([]byte(secret))),
			percentAll(secret, false), url.QueryEscape(secret), base64.StdEncoding.EncodeToString([]byte(secret)),
			base64.RawURLEncoding.EncodeToString([]byte("=" + secret)), tok, strings.ToUpper(tok), base64.StdEncoding.EncodeToString([]byte(tok)),
		}
		if len(secret) > 2 {
			forms = append(forms, secret[:1]+"\x1b[31m"+secret[1:], secret[:2]+"\x1b[m\x1b[K"+secret[2:])
		}
		put := forms[int(form)%len(forms)]
		pos := int(at) % (len(text) + 1)
		in := append(append(append([]byte(nil), text[:pos]...), put...), text[pos:]...)

		var whole, split bytes.Buffer
		m := New(&whole, values)
		m.Write(in)
		m.Close()
		m = New(&split, values)
		n := int(chunk)%23 + 1
		for i := 0; i < len(in); i += n {
			m.Write(in[i:min(i+n, len(in))])
		}
		m.Close()
		out := whole.Bytes()
		if !bytes.Equal(out, split.Bytes()) {
			t.Fatalf("%q: in one write %q, in writes of %d bytes %q", in, out, n, split.Bytes())
		}
		refTokens.once.Do(func() { refTokens.re = refPattern(nil) })
		refs := []*regexp.Regexp{refTokens.re}
		if values != nil {
			refs = append(refs, refValues(secret))
		}
		match := func(b []byte) []int {
			for _, re := range refs {
				if loc := re.FindIndex(b); loc != nil {
					return loc
				}
			}
			return nil
		}
		spans, _ := m.sc.scan(in, true)
		if loc := match(in); (loc != nil) != (len(spans) > 0) {
			t.Fatalf("%q (values %q): the reference finds an occurrence at %v, the scanner at %v", in, values, loc, spans)
		}
		if len(spans) == 0 && !bytes.Equal(out, in) {
			t.Fatalf("%q: nothing secret, but masked to %q", in, out)
		}
		if loc := match(out); loc != nil {
			t.Fatalf("%q: the output %q still holds %q", in, out, out[loc[0]:loc[1]])
		}
		if put != "" && len(secret) >= minEncoded && bytes.Contains(out, []byte(put)) {
			t.Fatalf("%q: the output %q holds the form %q put in", in, out, put)
		}
	})
}

// BenchmarkMasker measures the masker on a build log (compiler lines,
// colours, hashes, URLs; no secrets) written in 4 KiB pieces, with a
// task's credentials and a --secret-env value to find.
func BenchmarkMasker(b *testing.B) {
	s, _ := auth.ParseSecret("ourci-secret-v1:" + strings.Repeat("5a", 32))
	cap := s.BlobToken("ba9876543210", "0123456789ab", 1)
	values := []string{s.TaskToken("0123456789ab", 1), cap, "http://127.0.0.1:7380/v1/blob/" + cap, "s3cr3t-deploy-key-0042"}
	var log bytes.Buffer
	for i := 0; log.Len() < 1<<20; i++ {
		fmt.Fprintf(&log, "\x1b[32m[%4d/2000]\x1b[0m CC build/obj/module_%d.o -O2 -Wall -I include -DVERSION=%x\n", i%2000, i, i*7919)
		fmt.Fprintf(&log, "+ curl -fsS https://mirror.example.com/pkg/%d.tar.gz | sha256sum  # %064x\n", i, i)
		fmt.Fprintf(&log, "warning: our resource usage is %d%% of the quota; see output/%d.txt\n", i%100, i)
	}
	text := log.Bytes()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		m := New(io.Discard, values)
		for i := 0; i < len(text); i += 4096 {
			m.Write(text[i:min(i+4096, len(text))])
		}
		m.Close()
	}
}
