package main

import "testing"

func TestSafeText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ci/all.sh --fast", "ci/all.sh --fast"},
		{"héllo ✓ 日本", "héllo ✓ 日本"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[Hpassed", `\x1b[2J\x1b[Hpassed`},
		{"a\rb\nc\td", `a\x0db\x0ac\x09d`},
		{"\u009b31m", `\u{009b}31m`},
		{"abc\u202edcba", `abc\u{202e}dcba`},
		{"bad \xff byte", `bad \xff byte`},
		{"del\x7f", `del\x7f`},
	} {
		if got := safeText(c.in); got != c.want {
			t.Errorf("safeText(%q): got %q, want %q", c.in, got, c.want)
		}
	}
}
