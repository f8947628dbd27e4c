package raftfsm

import (
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// watchedLogs is the Raft log store with its appends watched: a node that
// cannot append (a full disk, a failing device) keeps running with a frozen
// replica, and only its log store knows. onChange hears each change between
// working (nil) and failing (the error); appends that work as before cost
// one atomic load.
type watchedLogs struct {
	raft.LogStore
	failing  atomic.Bool
	onChange func(error)
}

func (w *watchedLogs) StoreLog(l *raft.Log) error {
	return w.note(w.LogStore.StoreLog(l))
}

func (w *watchedLogs) StoreLogs(ls []*raft.Log) error {
	return w.note(w.LogStore.StoreLogs(ls))
}

func (w *watchedLogs) note(err error) error {
	if err != nil {
		w.failing.Store(true)
		w.onChange(err)
	} else if w.failing.Load() && w.failing.CompareAndSwap(true, false) {
		w.onChange(nil)
	}
	return err
}

// watchedStable does the same for the stable store (term and vote).
type watchedStable struct {
	raft.StableStore
	logs *watchedLogs
}

func (w *watchedStable) Set(k, v []byte) error { return w.logs.note(w.StableStore.Set(k, v)) }
func (w *watchedStable) SetUint64(k []byte, v uint64) error {
	return w.logs.note(w.StableStore.SetUint64(k, v))
}
