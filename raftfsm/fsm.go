package raftfsm

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM adapts State to raft.FSM and makes it safe to read while Raft applies.
type FSM struct {
	mu     sync.RWMutex
	state  *State
	index  uint64        // last applied Raft index
	change chan struct{} // closed and replaced after every apply or restore
}

// NewFSM returns an FSM over an empty ledger.
func NewFSM() *FSM {
	return &FSM{state: NewState(), change: make(chan struct{})}
}

// Apply implements raft.FSM. An entry that cannot be decoded panics: it was
// committed, so every replica holds it, and skipping it would let replicas
// diverge silently.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftfsm: entry %d: %v", l.Index, err))
	}
	f.mu.Lock()
	r := f.state.Apply(l.Index, c)
	f.index = l.Index
	ch := f.change
	f.change = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	return r
}

// Read calls fn with the ledger under the read lock. fn must not keep
// pointers into the state after it returns (use Clone) and must not block.
func (f *FSM) Read(fn func(s *State, index uint64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state, f.index)
}

// Index returns the last applied Raft index.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Watch returns the last applied index and a channel closed as soon as a
// later entry is applied (or a snapshot restored).
func (f *FSM) Watch() (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index, f.change
}

// Snapshot implements raft.FSM: it captures a consistent view under the
// read lock (a shallow copy: Apply never writes into a slice's elements,
// a map or a pointee that a copy may share; it appends or replaces) and leaves the encoding to Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &snapshot{view: f.state.view(), index: f.index}, nil
}

// Restore implements raft.FSM: it decodes into fresh state and swaps it in.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, idx, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state, f.index = s, idx
	ch := f.change
	f.change = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	return nil
}
