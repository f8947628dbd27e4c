package raftfsm

import (
	"fmt"
	"maps"
	"slices"
)

// maxBlobName bounds a blob name; the API validates names fully.
const maxBlobName = 200

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// insertSorted returns the sorted set s with v added. It never writes into
// s's backing array (a snapshot view may share it): copy on write.
func insertSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	out := make([]string, 0, len(s)+1)
	return append(append(append(out, s[:i]...), v), s[i:]...)
}

// removeSorted returns the sorted set s without v, copying on write.
func removeSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if !found {
		return s
	}
	out := make([]string, 0, len(s)-1)
	return append(append(out, s[:i]...), s[i+1:]...)
}

func (s *State) applyBlobAdded(c *BlobAdded, idx uint64) error {
	switch {
	case !validHash(c.Hash):
		return fmt.Errorf("%w: blob hash %q", ErrInvalid, c.Hash)
	case c.Size < 0 || c.Node == "":
		return fmt.Errorf("%w: blob %s needs a size and a node", ErrInvalid, c.Hash)
	case c.Name != "" && (c.Job == "" || len(c.Name) > maxBlobName):
		return fmt.Errorf("%w: blob name %q needs a job and at most %d bytes", ErrInvalid, c.Name, maxBlobName)
	}
	var j *Job
	if c.Job != "" {
		j = s.Jobs[c.Job]
		switch {
		case j == nil:
			return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
		case j.State != JobOpen:
			return fmt.Errorf("%w: job %s closed (%s), cannot add blobs to it", ErrJobClosed, j.ID, j.Status)
		}
	}
	b := s.Blobs[c.Hash]
	if b != nil && b.Size != c.Size {
		return fmt.Errorf("%w: blob %s is %d bytes, not %d", ErrConflict, c.Hash, b.Size, c.Size)
	}
	if j != nil && c.MaxJobBytes > 0 {
		if _, refers := slices.BinarySearch(j.BlobRef, c.Hash); !refers {
			var used int64
			for _, h := range j.BlobRef {
				if rb := s.Blobs[h]; rb != nil {
					used += rb.Size
				}
			}
			if used+c.Size > c.MaxJobBytes {
				return fmt.Errorf("%w: job %s refers to %d blob bytes; %d more would pass its %d (--max-job-blob-bytes)", ErrQuota, j.ID, used, c.Size, c.MaxJobBytes)
			}
		}
	}
	if b == nil {
		b = &Blob{Hash: c.Hash, Size: c.Size, CreatedAt: c.At, Index: idx}
		s.Blobs[c.Hash] = b
	}
	b.Holders = insertSorted(b.Holders, c.Node)
	if j != nil {
		b.Jobs = insertSorted(b.Jobs, j.ID)
		j.BlobRef = insertSorted(j.BlobRef, b.Hash)
		if c.Name != "" && j.Blobs[c.Name] != b.Hash {
			names := maps.Clone(j.Blobs) // copy on write, as above
			if names == nil {
				names = map[string]string{}
			}
			names[c.Name] = b.Hash
			j.Blobs = names
		}
		s.touch(j.ID)
	}
	return nil
}

func (s *State) applyBlobDropped(c *BlobDropped) error {
	b := s.Blobs[c.Hash]
	if b == nil {
		return fmt.Errorf("%w: blob %s", ErrNotFound, c.Hash)
	}
	b.Holders = removeSorted(b.Holders, c.Node)
	return nil
}

func (s *State) applyExpire(c *Expire) error {
	for _, id := range c.Jobs {
		j := s.Jobs[id]
		if j == nil || j.State != JobClosed || j.Expired {
			continue // raced with another expiry; nothing to do
		}
		for _, h := range j.BlobRef {
			if _, log := slices.BinarySearch(j.LogRefs, h); log {
				continue // also a sealed log, kept for the log retention
			}
			if b := s.Blobs[h]; b != nil {
				b.Jobs = removeSorted(b.Jobs, id)
			}
		}
		j.BlobRef, j.Blobs, j.Expired = nil, nil, true
		s.touch(id)
	}
	for _, id := range c.Logs {
		s.expireLogs(id)
	}
	for _, h := range c.Blobs {
		if b := s.Blobs[h]; b != nil && len(b.Jobs) == 0 {
			delete(s.Blobs, h)
		}
	}
	forgotten := map[string]bool{}
	for _, id := range c.Forget {
		j := s.Jobs[id]
		if j == nil || j.State != JobClosed || !j.Expired {
			continue
		}
		s.expireLogs(id) // a job forgotten keeps no logs
		for _, tid := range j.Tasks {
			delete(s.Tasks, tid)
		}
		delete(s.Jobs, id)
		delete(s.open, id)
		forgotten[id] = true
	}
	if len(forgotten) > 0 {
		s.JobOrder = slices.DeleteFunc(slices.Clone(s.JobOrder), func(id string) bool { return forgotten[id] })
		for k, tid := range s.Keys { // deleting in any order gives the same map
			if _, ok := s.Tasks[tid]; !ok {
				delete(s.Keys, k)
			}
		}
	}
	return nil
}

// ResolveBlob finds a blob by hash, or by name within job.
func (s *State) ResolveBlob(job, ref string) (*Blob, bool) {
	if validHash(ref) {
		b, ok := s.Blobs[ref]
		return b, ok
	}
	if j := s.Jobs[job]; j != nil {
		if h, ok := j.Blobs[ref]; ok {
			b, ok := s.Blobs[h]
			return b, ok
		}
	}
	return nil, false
}

// SplitUsage is BlobUsage split in two: artifacts (blobs, per node:
// count and bytes) and sealed task logs (a blob only jobs' LogRefs name).
func (s *State) SplitUsage() (artifacts, logs map[string][2]int64) {
	isLog := map[string]bool{}
	for _, j := range s.Jobs {
		for _, h := range j.LogRefs {
			isLog[h] = true
		}
	}
	for _, j := range s.Jobs {
		for _, h := range j.BlobRef {
			delete(isLog, h) // an artifact too
		}
	}
	artifacts, logs = map[string][2]int64{}, map[string][2]int64{}
	for h, b := range s.Blobs {
		out := artifacts
		if isLog[h] {
			out = logs
		}
		for _, n := range b.Holders {
			u := out[n]
			u[0]++
			u[1] += b.Size
			out[n] = u
		}
	}
	return artifacts, logs
}

// BlobUsage sums, per node, the blobs the ledger says it holds.
func (s *State) BlobUsage() map[string][2]int64 {
	out := map[string][2]int64{}
	for _, b := range s.Blobs {
		for _, n := range b.Holders {
			u := out[n]
			u[0]++
			u[1] += b.Size
			out[n] = u
		}
	}
	return out
}
