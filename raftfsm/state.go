package raftfsm

import (
	"cmp"
	"errors"
	"slices"
)

// Refusals: commands the ledger declines. The state is unchanged when a
// command is refused. Compare with errors.Is.
var (
	ErrNotFound     = errors.New("raftfsm: not found")
	ErrJobClosed    = errors.New("raftfsm: job is closed")
	ErrStaleAttempt = errors.New("raftfsm: superseded attempt")
	ErrConflict     = errors.New("raftfsm: conflict")
	ErrInvalid      = errors.New("raftfsm: invalid command")
	// ErrQuota: a limit the leader stamped into the command (tasks per
	// job, open jobs, blob bytes per job) would be passed.
	ErrQuota = errors.New("raftfsm: quota exceeded")
)

// State is the whole ledger. It is plain data: no locks, no I/O.
// The exported fields are what a snapshot carries; the unexported ones are
// indexes rebuilt from them.
type State struct {
	Jobs     map[string]*Job   `json:"jobs"`
	Tasks    map[string]*Task  `json:"tasks"`
	JobOrder []string          `json:"job_order"` // job IDs, oldest first
	Keys     map[string]string `json:"keys"`      // spawn idempotency key -> task ID
	Blobs    map[string]*Blob  `json:"blobs"`     // by hash
	Rigs     map[string]*Rig   `json:"rigs"`      // by RigKey: nodes' health per topic
	Leases   map[string]*Lease `json:"leases"`    // by LeaseKey: devices held

	queued map[string]struct{}            // tasks in TaskQueued
	active map[string]map[string]struct{} // node -> tasks assigned or running there
	open   map[string]struct{}            // jobs in JobOpen
	at     uint64                         // index of the entry being applied; 0 outside Apply
}

// NewState returns an empty ledger.
func NewState() *State {
	s := &State{
		Jobs:  map[string]*Job{},
		Tasks: map[string]*Task{},
		Keys:  map[string]string{},
		Blobs: map[string]*Blob{},
		Rigs:  map[string]*Rig{}, Leases: map[string]*Lease{},
	}
	s.reindex()
	return s
}

// reindex rebuilds the derived indexes from the exported fields.
func (s *State) reindex() {
	s.queued = map[string]struct{}{}
	s.active = map[string]map[string]struct{}{}
	s.open = map[string]struct{}{}
	for id, t := range s.Tasks {
		s.index(id, "", t)
	}
	for id, j := range s.Jobs {
		if j.State == JobOpen {
			s.open[id] = struct{}{}
		}
	}
}

// index moves task id from its old place in the indexes to where t now
// belongs. oldNode is the node the task was active on, if any.
func (s *State) index(id, oldNode string, t *Task) {
	s.touch(t.Job)
	delete(s.queued, id)
	if m := s.active[oldNode]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(s.active, oldNode)
		}
	}
	switch {
	case t.State == TaskQueued:
		s.queued[id] = struct{}{}
	case t.State.Active():
		m := s.active[t.Node]
		if m == nil {
			m = map[string]struct{}{}
			s.active[t.Node] = m
		}
		m[id] = struct{}{}
	}
}

// touch records that job changed in the entry being applied.
func (s *State) touch(job string) {
	if j := s.Jobs[job]; j != nil && s.at != 0 {
		j.Modified = s.at
	}
}

// Queued returns the queued tasks, oldest first.
func (s *State) Queued() []*Task {
	out := make([]*Task, 0, len(s.queued))
	for id := range s.queued {
		out = append(out, s.Tasks[id])
	}
	sortTasks(out)
	return out
}

// Active returns the tasks assigned to or running on node, oldest first.
func (s *State) Active(node string) []*Task {
	m := s.active[node]
	out := make([]*Task, 0, len(m))
	for id := range m {
		out = append(out, s.Tasks[id])
	}
	sortTasks(out)
	return out
}

// Load is how many tasks are assigned to or running on node.
func (s *State) Load(node string) int { return len(s.active[node]) }

// ActiveNodes returns every node that has active tasks, sorted.
func (s *State) ActiveNodes() []string {
	out := make([]string, 0, len(s.active))
	for n := range s.active {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// OpenJobs returns the open jobs, oldest first.
func (s *State) OpenJobs() []*Job {
	out := make([]*Job, 0, len(s.open))
	for id := range s.open {
		out = append(out, s.Jobs[id])
	}
	slices.SortFunc(out, func(a, b *Job) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// RecentJobs returns up to n jobs, newest first.
func (s *State) RecentJobs(n int) []*Job {
	out := make([]*Job, 0, min(n, len(s.JobOrder)))
	for i := len(s.JobOrder) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, s.Jobs[s.JobOrder[i]])
	}
	return out
}

// JobTasks returns a job's tasks in spawn order.
func (s *State) JobTasks(job string) []*Task {
	j := s.Jobs[job]
	if j == nil {
		return nil
	}
	out := make([]*Task, 0, len(j.Tasks))
	for _, id := range j.Tasks {
		out = append(out, s.Tasks[id])
	}
	return out
}

func sortTasks(ts []*Task) {
	slices.SortFunc(ts, func(a, b *Task) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.ID, b.ID))
	})
}
