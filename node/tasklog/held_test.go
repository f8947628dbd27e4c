package tasklog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// List names every raw log the store holds, live or finished, sorted by
// task then attempt, and nothing else that lies in its directory.
func TestListHeld(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 0)
	for _, k := range []struct {
		task    string
		attempt int
		text    string
	}{{"tb", 10, "ten\n"}, {"tb", 2, "two\n"}, {"ta", 1, "one"}} {
		l, err := s.Create(k.task, k.attempt)
		if err != nil {
			t.Fatal(err)
		}
		l.Write([]byte(k.text))
		if k.task == "ta" {
			defer l.Finish() // listed while it runs too
		} else {
			l.Finish()
		}
	}
	// What is not a log: a retired file, a stray file, a name that is not
	// an attempt, a file in the store's own directory.
	for _, p := range []string{"tb/3.log.retired", "tb/notes.txt", "tb/0.log", "tb/01.log", "tb/x.log", "stray.log"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "tc"), 0o700) // a task directory with no log left
	got, empty, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(empty, []string{"tc"}) {
		t.Errorf("empty task directories: got %v, want [tc] (tb holds other files, not empty)", empty)
	}
	var names []string
	for _, h := range got {
		names = append(names, h.Task+"/"+strconv.Itoa(h.Attempt))
		if h.ModTime.IsZero() {
			t.Errorf("%s/%d: no modification time", h.Task, h.Attempt)
		}
	}
	if want := []string{"ta/1", "tb/2", "tb/10"}; !slices.Equal(names, want) {
		t.Errorf("List: got %v, want %v", names, want)
	}
	if got[0].Size != 3 || got[1].Size != 4 {
		t.Errorf("sizes: got %d and %d, want 3 and 4", got[0].Size, got[1].Size)
	}
	if l, e, err := New(filepath.Join(dir, "none"), 0).List(); err != nil || len(l)+len(e) != 0 {
		t.Errorf("a store whose directory is not made yet: got %v %v, %v; want nothing", l, e, err)
	}
	s.RemoveDir("tc")
	s.RemoveDir("tb") // holds files: stays
	if _, err := os.Stat(filepath.Join(dir, "tc")); !os.IsNotExist(err) {
		t.Errorf("RemoveDir of an empty task directory: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tb", "2.log")); err != nil {
		t.Errorf("RemoveDir of a task directory holding logs: %v, want them kept", err)
	}
}

// A log a previous life left (no Log of this process holds it) seals from
// its file: every byte, every line timed at the file's last write.
func TestSealFile(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 0)
	text := "first line\nsecond line\nno newline"
	p := filepath.Join(dir, "t1", "1.log")
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	info, err := s.SealFile("t1", 1, &b)
	if err != nil {
		t.Fatal(err)
	}
	sealed := open(t, b.Bytes())
	if got, err := io.ReadAll(sealed.Reader()); err != nil || string(got) != text {
		t.Errorf("sealed bytes: got %q, %v; want %q", got, err, text)
	}
	if info.Lines != 3 || info.Bytes != int64(len(text)) || info.Size != int64(b.Len()) {
		t.Errorf("info: got %+v, want 3 lines, %d bytes, size %d", info, len(text), b.Len())
	}
	lines, err := sealed.Lines(0, 10)
	if err != nil || len(lines) != 3 {
		t.Fatalf("lines: got %d, %v", len(lines), err)
	}
	for _, l := range lines {
		if !l.At.Equal(at) {
			t.Errorf("line %q timed %v, want the file's last write %v", l.Data, l.At, at)
		}
	}
	// Sealing again gives the same blob: a retry stores nothing new.
	var again bytes.Buffer
	if info2, err := s.SealFile("t1", 1, &again); err != nil || info2.Hash != info.Hash {
		t.Errorf("sealed again: hash %s, %v; want %s", info2.Hash, err, info.Hash)
	}

	if _, err := s.SealFile("t1", 2, io.Discard); !errors.Is(err, ErrNoLog) {
		t.Errorf("an attempt without a file: got %v, want ErrNoLog", err)
	}
	l, err := s.Create("t2", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("running\n"))
	if _, err := s.SealFile("t2", 1, io.Discard); !errors.Is(err, ErrUnsealable) {
		t.Errorf("a live attempt: got %v, want ErrUnsealable", err)
	}
	if err := s.Remove("t2", 1); err == nil || !s.Has("t2", 1) {
		t.Errorf("Remove of a live attempt: got %v (file kept %v), want a refusal", err, s.Has("t2", 1))
	}
	l.Finish()
	if err := s.Remove("t2", 1); err != nil || s.Has("t2", 1) {
		t.Errorf("Remove of a finished attempt: got %v, file kept %v", err, s.Has("t2", 1))
	}
	if err := s.Remove("t2", 1); err != nil {
		t.Errorf("Remove of a file that is gone: got %v, want nil", err)
	}
}

// A file being sealed is not handed on by Retire (it would be emptied
// under the seal): it is removed, and the seal reads on from its open file.
func TestSealFileWhileRetired(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 0)
	p := filepath.Join(dir, "t1", "1.log")
	os.MkdirAll(filepath.Dir(p), 0o700)
	text := bytes.Repeat([]byte("a line of the build\n"), 20000)
	if err := os.WriteFile(p, text, 0o600); err != nil {
		t.Fatal(err)
	}
	var given []string
	w := &retireOnWrite{s: s, given: &given}
	if _, err := s.SealFile("t1", 1, w); err != nil {
		t.Fatal(err)
	}
	if !w.retired || len(given) != 0 || s.Has("t1", 1) {
		t.Errorf("retired during the seal: %v, handed on %v, file kept %v; want it removed, not handed on", w.retired, given, s.Has("t1", 1))
	}
	got, err := io.ReadAll(open(t, w.b.Bytes()).Reader())
	if err != nil || !bytes.Equal(got, text) {
		t.Errorf("the seal read %d bytes, %v; want the %d of the file", len(got), err, len(text))
	}
}

// retireOnWrite retires t1/1 at the first write of the seal.
type retireOnWrite struct {
	s       *Store
	given   *[]string
	retired bool
	b       bytes.Buffer
}

func (r *retireOnWrite) Write(p []byte) (int, error) {
	if !r.retired {
		r.retired = true
		if err := r.s.Retire("t1", 1, func(path string) { *r.given = append(*r.given, path) }); err != nil {
			return 0, err
		}
	}
	return r.b.Write(p)
}
