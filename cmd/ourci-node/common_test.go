package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/ourci/ourci/node"
)

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		json    bool
		topic   string
	}{
		{[]string{"--json", "JOB"}, []string{"JOB"}, true, ""},
		{[]string{"JOB", "--json"}, []string{"JOB"}, true, ""},
		{[]string{"-t", "x", "--", "sh", "-c", "--json"}, []string{"sh", "-c", "--json"}, false, "x"},
		{[]string{"-t", "x", "a", "--json", "--", "--b"}, []string{"a", "--b"}, true, "x"},
		{nil, nil, false, ""},
	}
	for _, tt := range tests {
		fs := newFlagSet("t", "")
		j := fs.Bool("json", false, "")
		topic := fs.String("t", "", "")
		pos, err := parse(fs, tt.args)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if !slices.Equal(pos, tt.wantPos) || *j != tt.json || *topic != tt.topic {
			t.Errorf("%q: got pos %q json %v topic %q, want %q %v %q", tt.args, pos, *j, *topic, tt.wantPos, tt.json, tt.topic)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	if got := run([]string{"frobnicate"}); got != exitUsage {
		t.Errorf("got exit %d, want %d", got, exitUsage)
	}
}

// TestTokenCreateRoles: token create makes a token of each role, and an
// unknown role is a usage error.
func TestTokenCreateRoles(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "cluster.secret")
	if err := node.WriteSecret(secret, node.NewSecret()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		role string
		want int
	}{{"read", exitOK}, {"operate", exitOK}, {"metrics", exitOK}, {"admin", exitUsage}, {"", exitUsage}} {
		if got := run([]string{"token", "create", "--secret-file", secret, "--role", tt.role}); got != tt.want {
			t.Errorf("token create --role %q: got exit %d, want %d", tt.role, got, tt.want)
		}
	}
}
