package blobs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A spare becomes the file of the next put (no new file is made) and holds
// exactly the blob's bytes, whatever it held before.
func TestSpareBecomesTheNextPut(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := filepath.Join(t.TempDir(), "..", filepath.Base(t.TempDir())+"-log") // the same file system
	if err := os.WriteFile(old, []byte(strings.Repeat("a sealed task log, longer than the blob\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(old)
	ino := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	want := ino(old)
	s.AddSpare(old)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the spare's old path: got %v, want it gone (the store owns the file)", err)
	}
	h, n, err := s.Put(strings.NewReader("blob bytes"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := ino(s.path(h)); got != want {
		t.Errorf("the put's file: inode %d, want the spare's %d", got, want)
	}
	f, err := s.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 64)
	k, _ := f.Read(b)
	if string(b[:k]) != "blob bytes" || n != int64(len("blob bytes")) {
		t.Errorf("the blob: got %q (%d), want %q", b[:k], n, "blob bytes")
	}
}
