package tasklog

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogCapAndNotes(t *testing.T) {
	s := New(t.TempDir(), 10)
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	l.MaskNotes(func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("tok"), []byte("***")) })
	l.Note("starting with tok")
	l.Write([]byte("0123456789abcdef"))
	l.Write([]byte("GONE"))
	l.Note("exit 0")
	l.Finish()
	var got bytes.Buffer
	if err := s.Stream(context.Background(), &got, func() {}, "t1", 1, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[ourci] starting with ***\n", "0123456789\n[ourci] the output passed 10 B", "[ourci] exit 0\n"} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("log: got %q, want it to hold %q", got.String(), want)
		}
	}
	if strings.Contains(got.String(), "abcdef") || strings.Contains(got.String(), "GONE") || strings.Contains(got.String(), " tok") {
		t.Errorf("log: got %q: output past the cap, or an unmasked note", got.String())
	}
	if err, _ := l.WriteErr(); err != nil {
		t.Errorf("WriteErr: got %v, want nil", err)
	}
}

// A second run of an attempt on the node adds to its log, never truncates.
func TestLogNeverTruncated(t *testing.T) {
	s := New(t.TempDir(), 0)
	for _, text := range []string{"first life\n", "second life\n"} {
		l, err := s.Create("t1", 1)
		if err != nil {
			t.Fatal(err)
		}
		l.Write([]byte(text))
		l.Finish()
	}
	var got bytes.Buffer
	if err := s.Stream(context.Background(), &got, func() {}, "t1", 1, false); err != nil {
		t.Fatal(err)
	}
	if g := got.String(); !strings.HasPrefix(g, "first life\n") || !strings.HasSuffix(g, "second life\n") || !strings.Contains(g, "runs again on this node") {
		t.Errorf("log: got %q, want both lives with the marker between", g)
	}
	if err := s.Stream(context.Background(), &got, func() {}, "t2", 1, false); !errors.Is(err, ErrNoLog) {
		t.Errorf("an attempt with no log: got %v, want ErrNoLog", err)
	}
}

// A follower sees every write of a running attempt and stops at its end.
func TestStreamFollows(t *testing.T) {
	s := New(t.TempDir(), 0)
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return got.Write(p) })
	done := make(chan error, 1)
	go func() { done <- s.Stream(context.Background(), w, func() {}, "t1", 1, true) }()
	for i := range 50 {
		l.Write([]byte{byte('a' + i%26)})
	}
	l.Finish()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not stop within 10s of the log's end")
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Len() != 50 {
		t.Errorf("followed: got %d bytes %q, want 50", got.Len(), got.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
