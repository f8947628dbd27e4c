package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourci/ourci/raftfsm"
)

func TestOperatorUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.snap")
	if err := os.WriteFile(bad, []byte("not a snapshot file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"snapshot"}, exitUsage},
		{[]string{"snapshot", "frobnicate"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"snapshot", "save"}, exitUsage},
		{[]string{"snapshot", "save", "a", "b"}, exitUsage},
		{[]string{"snapshot", "restore"}, exitUsage},
		{[]string{"snapshot", "restore", "--secret-file", filepath.Join(t.TempDir(), "none"), bad}, exitAuth},
		{[]string{"raft", "recover", "extra"}, exitUsage},
		{[]string{"raft", "recover", "--data-dir", t.TempDir(), "--name", "n1"}, exitUsage}, // no Raft state
	}
	for _, tt := range tests {
		if got := run(append([]string{"operator"}, tt.args...)); got != tt.want {
			t.Errorf("operator %q: got exit %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestDataDirMessage(t *testing.T) {
	dir := "/var/lib/ourci"
	tests := []struct {
		name string
		err  error
		want []string // in the message; "" for none
	}{
		{"damaged", fmt.Errorf("node: start: %w", &raftfsm.DataError{Dir: dir, File: dir + "/raft.db", Kind: raftfsm.ErrDamaged, Detail: "the file is truncated"}),
			[]string{"damaged: /var/lib/ourci/raft.db: the file is truncated.", "mv /var/lib/ourci /var/lib/ourci.damaged", "--peer", "ourci-node operator snapshot restore FILE"}},
		{"in use", &raftfsm.DataError{Dir: dir, File: dir + "/raft.db", Kind: raftfsm.ErrInUse},
			[]string{"data directory /var/lib/ourci is in use", "raft.db is locked", "Stop that node first"}},
		{"another error", errors.New("node: raft listen: address in use"), nil},
		{"no error", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, ok := dataDirMessage(tt.err)
			if ok != (tt.want != nil) {
				t.Fatalf("got (%q, %v), want a message: %v", msg, ok, tt.want != nil)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to say %q", msg, w)
				}
			}
			if strings.Contains(msg, "raftfsm") {
				t.Errorf("got %q, want no Go package names", msg)
			}
		})
	}
}
