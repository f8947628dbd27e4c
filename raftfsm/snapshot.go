package raftfsm

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// Snapshot stream format: one JSON value per line. The first line is the
// header; then every job, every task and every idempotency key, each sorted by
// ID, so that equal ledgers give byte-identical snapshots (Hash relies on it).
//
//	{"format":"ourci-ledger","version":1,"index":N}
//	{"job":{...}}
//	{"task":{...}}
//	{"key":["k","task"]}
//	{"blob":{...}}
//	{"rig":{...}}    (by node and topic)
//	{"lease":{...}}  (by node and device)
const (
	snapshotFormat  = "ourci-ledger"
	snapshotVersion = 1
)

type snapHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
}

type snapRecord struct {
	Job   *Job       `json:"job,omitempty"`
	Task  *Task      `json:"task,omitempty"`
	Key   *[2]string `json:"key,omitempty"`
	Blob  *Blob      `json:"blob,omitempty"`
	Rig   *Rig       `json:"rig,omitempty"`
	Lease *Lease     `json:"lease,omitempty"`
}

// view is a point-in-time copy of State that shares nothing Apply mutates.
type view struct {
	jobs   []Job
	tasks  []Task
	keys   [][2]string
	blobs  []Blob
	rigs   []Rig
	leases []Lease
}

func (s *State) view() *view {
	v := &view{}
	v.jobs = make([]Job, 0, len(s.Jobs))
	for _, j := range s.Jobs {
		v.jobs = append(v.jobs, *j)
	}
	v.tasks = make([]Task, 0, len(s.Tasks))
	for _, t := range s.Tasks {
		v.tasks = append(v.tasks, *t)
	}
	v.blobs = make([]Blob, 0, len(s.Blobs))
	for _, b := range s.Blobs {
		v.blobs = append(v.blobs, *b)
	}
	for _, r := range s.Rigs {
		v.rigs = append(v.rigs, *r)
	}
	for _, l := range s.Leases {
		v.leases = append(v.leases, *l)
	}
	v.keys = make([][2]string, 0, len(s.Keys))
	for k, id := range s.Keys {
		v.keys = append(v.keys, [2]string{k, id})
	}
	return v
}

func (v *view) write(w io.Writer, index uint64) error {
	slices.SortFunc(v.jobs, func(a, b Job) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(v.tasks, func(a, b Task) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(v.keys, func(a, b [2]string) int { return cmp.Compare(a[0], b[0]) })
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapHeader{Format: snapshotFormat, Version: snapshotVersion, Index: index}); err != nil {
		return err
	}
	for i := range v.jobs {
		if err := enc.Encode(snapRecord{Job: &v.jobs[i]}); err != nil {
			return err
		}
	}
	for i := range v.tasks {
		if err := enc.Encode(snapRecord{Task: &v.tasks[i]}); err != nil {
			return err
		}
	}
	for i := range v.keys {
		if err := enc.Encode(snapRecord{Key: &v.keys[i]}); err != nil {
			return err
		}
	}
	slices.SortFunc(v.blobs, func(a, b Blob) int { return cmp.Compare(a.Hash, b.Hash) })
	for i := range v.blobs {
		if err := enc.Encode(snapRecord{Blob: &v.blobs[i]}); err != nil {
			return err
		}
	}
	slices.SortFunc(v.rigs, func(a, b Rig) int { return cmp.Compare(RigKey(a.Node, a.Topic), RigKey(b.Node, b.Topic)) })
	for i := range v.rigs {
		if err := enc.Encode(snapRecord{Rig: &v.rigs[i]}); err != nil {
			return err
		}
	}
	slices.SortFunc(v.leases, func(a, b Lease) int { return cmp.Compare(LeaseKey(a.Node, a.Device), LeaseKey(b.Node, b.Device)) })
	for i := range v.leases {
		if err := enc.Encode(snapRecord{Lease: &v.leases[i]}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// snapshot is the raft.FSMSnapshot: the view is captured, encoding happens
// in Persist, off the apply path.
type snapshot struct {
	view  *view
	index uint64
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.view.write(sink, s.index); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftfsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// WriteSnapshot writes the state in snapshot format (tests, tools, Hash).
func WriteSnapshot(w io.Writer, s *State, index uint64) error {
	return s.view().write(w, index)
}

// ErrSnapshot marks a snapshot that cannot be read.
var ErrSnapshot = errors.New("raftfsm: bad snapshot")

// ReadSnapshot decodes a snapshot stream into fresh state.
func ReadSnapshot(r io.Reader) (*State, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapHeader
	if err := dec.Decode(&h); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %w", ErrSnapshot, err)
	}
	if h.Format != snapshotFormat || h.Version < 1 || h.Version > snapshotVersion {
		return nil, 0, fmt.Errorf("%w: format %q version %d, this binary reads %q up to %d", ErrSnapshot, h.Format, h.Version, snapshotFormat, snapshotVersion)
	}
	s := NewState()
	for {
		var rec snapRecord
		err := dec.Decode(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		switch {
		case rec.Job != nil:
			s.Jobs[rec.Job.ID] = rec.Job
		case rec.Task != nil:
			s.Tasks[rec.Task.ID] = rec.Task
		case rec.Key != nil:
			s.Keys[rec.Key[0]] = rec.Key[1]
		case rec.Blob != nil:
			s.Blobs[rec.Blob.Hash] = rec.Blob
		case rec.Rig != nil:
			s.Rigs[RigKey(rec.Rig.Node, rec.Rig.Topic)] = rec.Rig
		case rec.Lease != nil:
			s.Leases[LeaseKey(rec.Lease.Node, rec.Lease.Device)] = rec.Lease
		default:
			return nil, 0, fmt.Errorf("%w: empty record", ErrSnapshot)
		}
	}
	// Jobs were written by ID; restore their creation order.
	s.JobOrder = slices.SortedFunc(maps.Keys(s.Jobs), func(a, b string) int {
		ja, jb := s.Jobs[a], s.Jobs[b]
		return cmp.Or(cmp.Compare(ja.Index, jb.Index), cmp.Compare(a, b))
	})
	for _, t := range s.Tasks {
		if s.Jobs[t.Job] == nil {
			return nil, 0, fmt.Errorf("%w: task %s of unknown job %s", ErrSnapshot, t.ID, t.Job)
		}
	}
	s.reindex()
	return s, h.Index, nil
}

// Hash returns a digest of the ledger's content, equal on replicas that
// hold the same state (the index is not part of it).
func (s *State) Hash() [32]byte {
	h := sha256.New()
	_ = s.view().write(h, 0)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
