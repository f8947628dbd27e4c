package blobs

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const hexA = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

func TestParseRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Hash
		ok   bool
	}{
		{hexA, hexA, true},
		{"sha256:" + hexA, hexA, true},
		{strings.ToUpper(hexA), hexA, true},
		{"SHA256:" + strings.ToUpper(hexA), hexA, true},
		{"", "", false},
		{"sha256:", "", false},
		{hexA[:63], "", false},
		{hexA + "0", "", false},
		{"sha256:" + hexA[:63], "", false},
		{"sha512:" + hexA, "", false},
		{"sha256:sha256:" + hexA[:50], "", false},
		{" " + hexA, "", false},
		{hexA[:63] + "g", "", false},
		{"sha256:" + hexA[:62] + "/x", "", false},
		{"../" + hexA[3:], "", false},
	}
	for _, tt := range tests {
		got, ok := ParseRef(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRef(%q): got %q %v, want %q %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if got, want := Hash(hexA).Ref(), "sha256:"+hexA; got != want {
		t.Errorf("Ref: got %q, want %q", got, want)
	}
}

var goodNames = []string{
	"fw.tar.gz", "esp8266/fw-ota.tar.gz", "a", "A_b-c.d", ".hidden", "a/.b/c..d", "...", "x" + strings.Repeat("y", 199),
	hexA[:63], "sha256-" + hexA, hexA + ".tar", "v1.2/" + hexA,
}

var badNames = []string{
	"", "../x", "a/../../b", "/etc/passwd", "a//b", ".", "..", "a/", "a/.", "./a", "a/./b", "x/..",
	"a\x00b", `a\b`, `..\..\x`, "a b", "a:b", "é", "a\nb", "%2e%2e/x", "a?b", "a#b", "~/x",
	strings.Repeat("x", 201), hexA, strings.ToUpper(hexA), "sha256:" + hexA,
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for _, name := range goodNames {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%q): got %v, want nil", name, err)
		}
	}
	for _, name := range badNames {
		err := ValidName(name)
		if !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q): got %v, want ErrBadName", name, err)
		} else if !strings.HasPrefix(err.Error(), "blobs: ") {
			t.Errorf("ValidName(%q): error %q lacks the blobs: prefix", name, err)
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range append([]string{hexA, "sha256:" + hexA, strings.ToUpper(hexA), "sha256:"}, badNames...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := ParseRef(s)
		if !ok {
			if h != "" {
				t.Fatalf("ParseRef(%q): refused but returned %q", s, h)
			}
			return
		}
		if !h.Valid() {
			t.Fatalf("ParseRef(%q): accepted invalid hash %q", s, h)
		}
		if !strings.EqualFold(s, string(h)) && !strings.EqualFold(s, h.Ref()) {
			t.Fatalf("ParseRef(%q) = %q is not the input", s, h)
		}
		if back, ok := ParseRef(h.Ref()); !ok || back != h {
			t.Fatalf("ParseRef(Ref()): got %q %v, want %q", back, ok, h)
		}
		if ValidName(s) == nil {
			t.Fatalf("ValidName accepts the reference %q", s)
		}
	})
}

func FuzzValidName(f *testing.F) {
	for _, s := range append(slices.Clone(goodNames), badNames...) {
		f.Add(s)
	}
	dir := filepath.FromSlash("/srv/blobs")
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxNameLen {
			t.Fatalf("accepted name of %d bytes", len(name))
		}
		if _, ok := ParseRef(name); ok {
			t.Fatalf("accepted a hash reference %q", name)
		}
		if filepath.Clean(name) != name || filepath.IsAbs(name) {
			t.Fatalf("accepted unclean or absolute name %q", name)
		}
		joined := filepath.Join(dir, name)
		if !strings.HasPrefix(joined, dir+string(filepath.Separator)) {
			t.Fatalf("Join(%q, %q) = %q escapes", dir, name, joined)
		}
		for _, el := range strings.Split(filepath.ToSlash(joined), "/") {
			if el == ".." {
				t.Fatalf("Join(%q, %q) = %q has a .. element", dir, name, joined)
			}
		}
	})
}
