package node

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestMasker(t *testing.T) {
	secret := "hunter2-s3cr3t"
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole", []string{"token=" + secret + "\n"}, "token=***\n"},
		{"split across writes", []string{"a " + secret[:5], secret[5:9], secret[9:] + " b\n"}, "a *** b\n"},
		{"byte by byte", strings.Split("x"+secret+"y", ""), "x***y"},
		{"base64", []string{"auth: " + b64 + "\n"}, "auth: ***\n"},
		{"twice", []string{secret + secret}, "******"},
		{"prefix only, at the end", []string{"xx" + secret[:6]}, "xx" + secret[:6]},
		{"nothing secret", []string{"plain line\n", "another\n"}, "plain line\nanother\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		m := newMasker(&buf, []string{secret, ""})
		for _, w := range tt.writes {
			if n, err := m.Write([]byte(w)); err != nil || n != len(w) {
				t.Fatalf("%s: Write: got %d, %v; want %d, nil", tt.name, n, err, len(w))
			}
		}
		m.Close()
		if got := buf.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestMaskerNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	m := newMasker(&buf, nil)
	m.Write([]byte("passes straight through"))
	if buf.String() != "passes straight through" {
		t.Errorf("got %q", buf.String())
	}
}
