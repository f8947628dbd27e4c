// Package fakeledger is a ledger replica for unit tests of the packages
// that read one (node/runner, node/leader): a plain raftfsm.State whose
// entries the test applies, with the Read, Watch and Index of
// raftfsm.FSM, and a Writer that applies commands as the leader's write
// path would. No Raft, no disk, no clock. It imports nothing of OurCI but
// raftfsm, so every package's tests can use it.
//
// Concurrency: safe for concurrent use; Apply wakes every Watch.
package fakeledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// Ledger is a replica the test feeds.
type Ledger struct {
	mu  sync.RWMutex
	s   *raftfsm.State
	idx uint64
	ch  chan struct{}
}

// New returns an empty ledger at index 0.
func New() *Ledger { return &Ledger{s: raftfsm.NewState(), ch: make(chan struct{})} }

// Read calls fn with the state under the read lock, as raftfsm.FSM.Read.
func (l *Ledger) Read(fn func(s *raftfsm.State, index uint64)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	fn(l.s, l.idx)
}

// Watch returns the index and a channel closed at the next Apply.
func (l *Ledger) Watch() (uint64, <-chan struct{}) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx, l.ch
}

// Index is the last applied index.
func (l *Ledger) Index() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx
}

// Apply applies c at the next index and wakes the watchers. It returns
// the result and the ledger's refusal, if any (a batch's first).
func (l *Ledger) Apply(c raftfsm.Command) (raftfsm.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx++
	res := l.s.Apply(l.idx, c)
	close(l.ch)
	l.ch = make(chan struct{})
	return res, resultErr(res)
}

func resultErr(r raftfsm.Result) error {
	if r.Err != nil {
		return r.Err
	}
	for _, b := range r.Batch {
		if err := resultErr(b); err != nil {
			return err
		}
	}
	return nil
}

// Task returns a copy of a task (the zero Task if the ledger has none).
func (l *Ledger) Task(id string) raftfsm.Task {
	var t raftfsm.Task
	l.Read(func(s *raftfsm.State, _ uint64) {
		if p := s.Tasks[id]; p != nil {
			t = *p.Clone()
		}
	})
	return t
}

// Job returns a copy of a job's record (the zero Job if none).
func (l *Ledger) Job(id string) raftfsm.Job {
	var j raftfsm.Job
	l.Read(func(s *raftfsm.State, _ uint64) {
		if p := s.Jobs[id]; p != nil {
			j = *p
		}
	})
	return j
}

// Writer applies what is submitted to its Ledger, as the leader's write
// path does, and records every command (applied or refused). Like the
// dispatcher it stamps each command with its clock's time (Clock; nil: the
// zero time).
type Writer struct {
	L     *Ledger
	Clock interface{ Now() time.Time }

	mu   sync.Mutex
	cmds []raftfsm.Command
	fail int // this many Submits fail as if the entry's fate were unknown
}

// ErrUnavailable is what a failing Submit returns.
var ErrUnavailable = errors.New("fakeledger: leadership lost while committing")

// Submit records c and applies it (a failing Submit applies nothing).
func (w *Writer) Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	w.mu.Lock()
	w.cmds = append(w.cmds, c)
	if w.fail > 0 {
		w.fail--
		w.mu.Unlock()
		return raftfsm.Result{}, ErrUnavailable
	}
	w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return raftfsm.Result{}, err
	}
	if w.Clock != nil {
		raftfsm.Stamp(&c, w.Clock.Now())
	}
	return w.L.Apply(c)
}

// FailNext makes the next n Submits fail with ErrUnavailable.
func (w *Writer) FailNext(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = n
}

// Commands returns what was submitted, in order.
func (w *Writer) Commands() []raftfsm.Command {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]raftfsm.Command(nil), w.cmds...)
}
