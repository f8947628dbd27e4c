package raftfsm

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// closed reports whether ch is closed, without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFSMWatch(t *testing.T) {
	f := NewFSM()
	idx, ch := f.Watch()
	if idx != 0 || closed(ch) {
		t.Fatalf("fresh FSM Watch: got index %d closed=%v, want 0 and open", idx, closed(ch))
	}

	// A waiter blocked on the channel wakes when an entry is applied.
	woke := make(chan uint64, 1)
	go func() {
		<-ch
		woke <- f.Index()
	}()
	r := fsmApply(t, f, 1, spawnRoot("j1", "r1"))
	if r.Err != nil || r.Task != "r1" {
		t.Fatalf("Apply: got %+v, want task r1 and no error", r)
	}
	select {
	case got := <-woke:
		if got != 1 {
			t.Errorf("index seen by the woken waiter: got %d, want 1", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("waiter not woken within 5s of Apply")
	}

	idx2, ch2 := f.Watch()
	if idx2 != 1 || closed(ch2) {
		t.Fatalf("Watch after Apply: got index %d closed=%v, want 1 and open", idx2, closed(ch2))
	}
	if ch2 == ch {
		t.Fatalf("Watch after Apply: got the old channel, want a new one")
	}

	// A refused command is still an applied entry: index moves, watchers wake.
	r = fsmApply(t, f, 2, spawnChild("ghost", "x", "r1"))
	if r.Err == nil {
		t.Fatalf("spawn into unknown job: got no error, want a refusal")
	}
	if !closed(ch2) || f.Index() != 2 {
		t.Fatalf("after refused entry: got closed=%v index %d, want closed and 2", closed(ch2), f.Index())
	}

	// Indexes may skip (config and no-op entries never reach the FSM).
	_, ch3 := f.Watch()
	fsmApply(t, f, 10, assign(Assignment{Task: "r1", Attempt: 1, Node: "n1"}))
	if !closed(ch3) || f.Index() != 10 {
		t.Fatalf("after entry 10: got closed=%v index %d, want closed and 10", closed(ch3), f.Index())
	}
	f.Read(func(s *State, index uint64) {
		if index != 10 || s.Load("n1") != 1 {
			t.Errorf("Read: got index %d load %d, want 10 and 1", index, s.Load("n1"))
		}
	})
}

func TestFSMApplyPanicsOnUndecodable(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown type", []byte{99, '{', '}'}},
		{"zero type", []byte{0}},
		{"bad json", []byte{byte(CmdSpawn), '{'}},
		{"nested batch", []byte{byte(CmdBatch), 1, byte(CmdBatch)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM()
			fsmApply(t, f, 1, spawnRoot("j1", "r1"))
			before, _ := fsmHash(f)
			_, ch := f.Watch()

			var recovered any
			func() {
				defer func() { recovered = recover() }()
				f.Apply(&raft.Log{Type: raft.LogCommand, Index: 7, Data: tt.data})
			}()
			if recovered == nil {
				t.Fatalf("Apply(undecodable): got no panic, want one")
			}
			msg := fmt.Sprint(recovered)
			if !strings.Contains(msg, "entry 7") || !strings.Contains(msg, ErrDecode.Error()) {
				t.Errorf("panic value: got %q, want it to name entry 7 and %q", msg, ErrDecode)
			}
			after, idx := fsmHash(f)
			if idx != 1 || after != before || closed(ch) {
				t.Errorf("after panic: got index %d hash changed=%v watch closed=%v, want 1, false, false", idx, after != before, closed(ch))
			}
		})
	}
}

func TestFSMIgnoresNonCommandEntries(t *testing.T) {
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated} {
		t.Run(typ.String(), func(t *testing.T) {
			f := NewFSM()
			fsmApply(t, f, 1, spawnRoot("j1", "r1"))
			before, _ := fsmHash(f)
			_, ch := f.Watch()
			// Even data that would not decode is ignored.
			if got := f.Apply(&raft.Log{Type: typ, Index: 2, Data: []byte("junk")}); got != nil {
				t.Errorf("Apply(%v): got %v, want nil", typ, got)
			}
			after, idx := fsmHash(f)
			if idx != 1 || after != before || closed(ch) {
				t.Errorf("after %v: got index %d hash changed=%v watch closed=%v, want 1, false, false", typ, idx, after != before, closed(ch))
			}
		})
	}
}

func TestFSMBatchResult(t *testing.T) {
	f := NewFSM()
	r := fsmApply(t, f, 1, batch(
		spawnRoot("j1", "r1"),
		spawnChild("j1", "c1", "r1"),
		spawnChild("j1", "c1", "r1"),
	))
	if len(r.Batch) != 3 || r.Batch[0].Task != "r1" || r.Batch[1].Task != "c1" || r.Batch[2].Err == nil {
		t.Fatalf("batch result: got %+v, want r1, c1, then a refusal", r)
	}
}

// TestFSMConcurrentReaders runs readers, watchers and snapshots alongside
// Apply; -race checks the locking.
func TestFSMConcurrentReaders(t *testing.T) {
	f := NewFSM()
	fsmApply(t, f, 1, spawnRoot("j1", "r1"))
	const n = 300
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.Read(func(s *State, idx uint64) {
					_ = s.Hash()
					_ = s.Queued()
					if j := s.Jobs["j1"]; j != nil && len(j.Tasks) != j.Open+j.Passed+j.Failed {
						errs <- fmt.Errorf("index %d: job tasks %d, counts %d", idx, len(j.Tasks), j.Open+j.Passed+j.Failed)
					}
				})
			}
		})
	}
	wg.Go(func() {
		last := uint64(0)
		for last < n+1 {
			idx, ch := f.Watch()
			if idx < last {
				errs <- fmt.Errorf("Watch index went back: %d after %d", idx, last)
				return
			}
			last = idx
			if idx >= n+1 {
				return
			}
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				errs <- fmt.Errorf("watcher: no change within 10s at index %d", idx)
				return
			}
		}
	})
	wg.Go(func() {
		for range 20 {
			snap, err := f.Snapshot()
			if err != nil {
				errs <- err
				return
			}
			if err := snap.Persist(&memSink{}); err != nil {
				errs <- err
				return
			}
		}
	})
	for i := 2; i <= n+1; i++ {
		id := fmt.Sprintf("t%03d", i)
		fsmApply(t, f, uint64(i), spawnChild("j1", id, "r1"))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.Index() != n+1 {
		t.Errorf("Index: got %d, want %d", f.Index(), n+1)
	}
}

func TestFSMRestoreClosesReader(t *testing.T) {
	l := richLedger(t)
	rc := &trackCloser{Reader: bytes.NewReader(snapshotBytes(t, l.s, 9))}
	f := NewFSM()
	if err := f.Restore(rc); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	if !rc.closed {
		t.Errorf("Restore: reader not closed, want closed")
	}
	bad := &trackCloser{Reader: strings.NewReader("nope")}
	if err := f.Restore(bad); err == nil {
		t.Errorf("Restore(bad): got nil error, want one")
	}
	if !bad.closed {
		t.Errorf("failed Restore: reader not closed, want closed")
	}
}

type trackCloser struct {
	io.Reader
	closed bool
}

func (c *trackCloser) Close() error { c.closed = true; return nil }
