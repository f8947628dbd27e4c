package tasklog

import (
	"bytes"
	"testing"
	"time"
)

// A stamped read of a running log gives whole lines only (unless final),
// each with its arrival time, and goes on from the line it stopped at;
// the same lines read from a Replica of the same stream read the same.
func TestWriteStampedFollowsALog(t *testing.T) {
	s := New(t.TempDir(), 0)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	l, err := s.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	ch := NewChunker("t1", 1)
	r := NewReplica("t1", 1)
	l.Tee(func(at time.Time, p []byte) {
		for _, c := range ch.Write(at, p) {
			if err := r.Apply(c); err != nil {
				t.Error(err)
			}
		}
	})
	var out bytes.Buffer
	next := 0
	steps := []struct {
		after time.Duration
		write string
		final bool
		want  string // what this step's read adds
	}{
		{0, "one\ntw", false, "2026-12-02T09:00:00.000Z one\n"},
		{1500 * time.Millisecond, "o\nthree", false, "2026-12-02T09:00:00.000Z two\n"},
		{time.Second, "", true, "2026-12-02T09:00:01.500Z three"},
	}
	for i, st := range steps {
		now = now.Add(st.after)
		if st.write != "" {
			l.Write([]byte(st.write))
		}
		before := out.Len()
		if next, err = l.WriteStamped(&out, next, st.final); err != nil {
			t.Fatal(err)
		}
		if got := out.String()[before:]; got != st.want {
			t.Errorf("step %d: got %q, want %q", i, got, st.want)
		}
	}
	if err := r.Apply(ch.Close()); err != nil {
		t.Fatal(err)
	}
	l.Finish()
	var fromReplica bytes.Buffer
	if k, err := WriteStamped(&fromReplica, r, 0, true); err != nil || k != 3 {
		t.Fatalf("from the replica: %d lines, %v; want 3", k, err)
	}
	if got, want := fromReplica.String(), out.String(); got != want {
		t.Errorf("from the replica: got %q, want what the log read %q", got, want)
	}
}
