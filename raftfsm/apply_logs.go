package raftfsm

import (
	"fmt"
	"slices"
)

// applyLogSealed records an attempt's sealed log: the task lists it, its
// job refers to its blob (apart from artifacts: kept until the log
// retention runs out), and the node that sealed it holds a copy.
func (s *State) applyLogSealed(c *LogSealed, idx uint64) error {
	t := s.Tasks[c.Task]
	switch {
	case t == nil:
		return fmt.Errorf("%w: task %s", ErrNotFound, c.Task)
	case !validHash(c.Log.Hash) || c.Log.Size < 0 || c.Log.Node == "" || c.Log.Attempt < 1 || c.Log.Attempt > t.Attempt:
		return fmt.Errorf("%w: sealed log of task %s: %+v", ErrInvalid, c.Task, c.Log)
	}
	for _, l := range t.Logs {
		if l.Attempt == c.Log.Attempt {
			return fmt.Errorf("%w: task %s attempt %d has a sealed log", ErrConflict, c.Task, c.Log.Attempt)
		}
	}
	j := s.Jobs[t.Job]
	if j.LogsExpired {
		return fmt.Errorf("%w: job %s's logs have expired", ErrJobClosed, j.ID)
	}
	b := s.Blobs[c.Log.Hash]
	if b != nil && b.Size != c.Log.Size {
		return fmt.Errorf("%w: blob %s is %d bytes, not %d", ErrConflict, c.Log.Hash, b.Size, c.Log.Size)
	}
	if b == nil {
		b = &Blob{Hash: c.Log.Hash, Size: c.Log.Size, CreatedAt: c.At, Index: idx}
		s.Blobs[b.Hash] = b
	}
	b.Holders = insertSorted(b.Holders, c.Log.Node)
	b.Jobs = insertSorted(b.Jobs, j.ID)
	j.LogRefs = insertSorted(j.LogRefs, b.Hash)
	t.Logs = append(slices.Clip(t.Logs), c.Log)
	s.touch(j.ID)
	return nil
}

// expireLogs drops a closed job's sealed logs once their retention ran out.
func (s *State) expireLogs(id string) {
	j := s.Jobs[id]
	if j == nil || j.State != JobClosed || j.LogsExpired {
		return
	}
	for _, h := range j.LogRefs {
		if _, artifact := slices.BinarySearch(j.BlobRef, h); artifact {
			continue
		}
		if b := s.Blobs[h]; b != nil {
			b.Jobs = removeSorted(b.Jobs, id)
		}
	}
	j.LogRefs, j.LogsExpired = nil, true
	s.touch(id)
}
