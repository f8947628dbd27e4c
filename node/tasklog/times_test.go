package tasklog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A finished attempt's log seals byte for byte as its file holds it, each
// line timed by the arrival of its first byte.
func TestLogSealsItsFile(t *testing.T) {
	s := New(t.TempDir(), 0)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Seal(io.Discard); !errors.Is(err, ErrUnsealable) {
		t.Errorf("Seal while it runs: got %v, want ErrUnsealable", err)
	}
	steps := []struct {
		after time.Duration
		write string
		note  bool
	}{
		{0, "compiling a.c\n", false},
		{time.Second, "progress 10%\rprogress", false},
		{time.Second, " 100%\n", false}, // the same line: its time is its first byte's
		{2 * time.Second, "exit code 0", true},
		{time.Second, "no newline at the end", false},
	}
	for _, st := range steps {
		now = now.Add(st.after)
		if st.note {
			l.Note("%s", st.write)
		} else {
			l.Write([]byte(st.write))
		}
	}
	l.Finish()
	file, err := os.ReadFile(filepath.Join(s.Dir(), "t1", "1.log"))
	if err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	info, err := l.Seal(&blob)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sealed.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file) {
		t.Errorf("sealed stream:\n%q\nwant the file:\n%q", got, file)
	}
	if info.Bytes != int64(len(file)) || info.Lines != 4 || info.Size != int64(blob.Len()) {
		t.Errorf("info: got %d bytes, %d lines, size %d; want %d, 4, %d", info.Bytes, info.Lines, info.Size, len(file), blob.Len())
	}
	lines, err := sealed.Lines(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	want := []struct {
		text string
		at   time.Duration
	}{
		{"compiling a.c\n", 0},
		{"progress 10%\rprogress 100%\n", time.Second},
		{"[ourci] exit code 0\n", 4 * time.Second},
		{"no newline at the end", 5 * time.Second},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines: got %d, want %d", len(lines), len(want))
	}
	for i, w := range want {
		if string(lines[i].Data) != w.text || !lines[i].At.Equal(start.Add(w.at)) {
			t.Errorf("line %d: got %q at %s, want %q at %s", i, lines[i].Data, lines[i].At.Sub(start), w.text, w.at)
		}
	}
}

// An attempt that runs again on the node adds to its log; the earlier
// output seals too (timed when the log was opened again).
func TestLogSealsALeftover(t *testing.T) {
	s := New(t.TempDir(), 0)
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("first life\npartial"))
	l.Finish()
	l, err = s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("second life\n"))
	l.Finish()
	file, _ := os.ReadFile(filepath.Join(s.Dir(), "t1", "1.log"))
	var blob bytes.Buffer
	info, err := l.Seal(&blob)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := OpenSealed(bytes.NewReader(blob.Bytes()), int64(blob.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(sealed.Reader())
	if !bytes.Equal(got, file) || info.Bytes != int64(len(file)) {
		t.Errorf("sealed: got %q (%d bytes), want the file %q", got, info.Bytes, file)
	}
}

// A log whose write failed (a full disk) is not sealed: what it holds is
// not what the task wrote.
func TestLogWithAFailedWriteIsNotSealed(t *testing.T) {
	s := New(t.TempDir(), 0)
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // the next write fails, as on a full disk
	l.Write([]byte("lost\n"))
	l.Finish()
	if _, err := l.Seal(io.Discard); !errors.Is(err, ErrUnsealable) {
		t.Errorf("Seal: got %v, want ErrUnsealable", err)
	}
}

// Retire hands a sealed log's file on only while nobody reads it: a
// reader that has it open never sees it emptied and reused.
func TestRetireSparesReaders(t *testing.T) {
	s := New(t.TempDir(), 0)
	for _, c := range []struct {
		name    string
		reading bool
		given   bool
	}{{"no reader: handed on", false, true}, {"a reader: removed, not handed on", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			l, err := s.Create("t1", 1)
			if err != nil {
				t.Fatal(err)
			}
			l.Write([]byte("output\n"))
			l.Finish()
			var got string
			var pr *io.PipeReader
			done := make(chan error, 1)
			if c.reading {
				var pw *io.PipeWriter
				pr, pw = io.Pipe()
				go func() { done <- s.Stream(context.Background(), pw, func() {}, "t1", 1, false); pw.Close() }()
				buf := make([]byte, 3)
				if _, err := io.ReadFull(pr, buf); err != nil { // the reader has the file open
					t.Fatal(err)
				}
			}
			if err := s.Retire("t1", 1, func(p string) { got = p }); err != nil {
				t.Fatal(err)
			}
			if (got != "") != c.given {
				t.Errorf("handed on: got %q, want %v", got, c.given)
			}
			if s.Has("t1", 1) {
				t.Errorf("the log is still the store's after Retire")
			}
			if c.reading {
				rest, _ := io.ReadAll(pr)
				if err := <-done; err != nil || string(rest) != "put\n" {
					t.Errorf("the reader after Retire: got %q, %v; want the rest of its log", rest, err)
				}
			}
			if got != "" {
				os.Remove(got)
			}
		})
	}
}
