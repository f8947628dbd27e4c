package node

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/tasklog"
)

// A seal that keeps failing is tried again after a backoff that doubles
// up to sweepBackoffMax, and is worth a log line only when the failure
// changes: not at every try of a disk that stays full.
func TestSealRetriesBackOffAndSayOnce(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &logSeals{now: func() time.Time { return now }}
	const key = "t1/1"
	if r, due := s.due(key); r != nil || !due {
		t.Fatalf("before any failure: got %v, due %v; want nothing and due", r, due)
	}
	full := func(tmp int) error {
		return fmt.Errorf("node: task log: seal: %w", &os.PathError{Op: "write", Path: fmt.Sprintf("/data/blobs/tmp/put-%d.tmp", tmp), Err: syscall.ENOSPC})
	}
	var waits []time.Duration
	var said []bool
	for k := range 10 {
		_, say := s.fail(key, nil, sealedBlob{}, full(k))
		said = append(said, say)
		r, due := s.due(key)
		if due {
			t.Fatalf("try %d: due at once after a failure", k+1)
		}
		waits = append(waits, r.next.Sub(now))
		now = r.next
		if _, due := s.due(key); !due {
			t.Fatalf("try %d: not due once its backoff passed", k+1)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 64 * time.Second, sweepBackoffMax, sweepBackoffMax, sweepBackoffMax}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("backoff: got %v, want %v", waits, want)
	}
	if !said[0] || said[1] || said[9] {
		t.Errorf("logged at tries %v; want the first only (the same full disk, whatever the temp file)", said)
	}
	// Sealed now, but the record fails: another failure, said once.
	blob := sealedBlob{hash: "ab"}
	if _, say := s.fail(key, nil, blob, fmt.Errorf("node: task log: record the seal: %w", errNotLeader)); !say {
		t.Error("a record failure after seal failures was not worth a line")
	}
	if r, _ := s.due(key); r.blob != blob || r.tries != 11 {
		t.Errorf("after the record failed: got blob %v tries %d, want the sealed blob kept for the next try, 11 tries", r.blob, r.tries)
	}
	if r := s.forget(key); r == nil {
		t.Error("forget: nothing to forget")
	}
	if r, due := s.due(key); r != nil || !due {
		t.Errorf("after forget: got %v, due %v", r, due)
	}
}

// The finished logs kept for a retry (their lines' times) are bounded; one
// whose Log says its file is not what was written is sealed from the file.
func TestSealRetriesKeepBoundedLogs(t *testing.T) {
	s := &logSeals{}
	st := tasklog.New(t.TempDir(), 0)
	for k := range maxKeptLogs + 3 {
		l, err := st.Create("t", k+1)
		if err != nil {
			t.Fatal(err)
		}
		l.Finish()
		s.fail(fmt.Sprintf("t/%d", k+1), l, sealedBlob{}, fmt.Errorf("node: task log: seal: %w", syscall.ENOSPC))
	}
	if s.kept != maxKeptLogs {
		t.Errorf("kept logs: got %d, want %d", s.kept, maxKeptLogs)
	}
	s.fail("t/1", nil, sealedBlob{}, fmt.Errorf("node: task log: seal: %w", tasklog.ErrUnsealable))
	if r, _ := s.due("t/1"); r.log != nil || s.kept != maxKeptLogs-1 {
		t.Errorf("after ErrUnsealable: log kept %v, %d kept; want it dropped", r.log != nil, s.kept)
	}
	s.forget("t/2")
	if s.kept != maxKeptLogs-2 {
		t.Errorf("after forget: %d kept, want %d", s.kept, maxKeptLogs-2)
	}
}
