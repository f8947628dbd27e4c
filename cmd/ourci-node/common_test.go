package main

import (
	"slices"
	"testing"
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
