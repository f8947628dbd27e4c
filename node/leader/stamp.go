package leader

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// Limits are the mesh's quotas and retry bounds, from the leader's flags.
// The dispatcher writes them into every command that carries one and has
// none (stamp), so a command built anywhere (a follower's runner, a
// handler, a duty) is applied under the leader's policy. Zero: none.
type Limits struct {
	MaxJobTasks     int   // Spawn.MaxJobTasks (--max-tasks-per-job)
	MaxOpenJobs     int   // Spawn.MaxOpenJobs (--max-open-jobs)
	MaxJobBlobBytes int64 // BlobAdded.MaxJobBytes (--max-job-blob-bytes)
	MaxAttempts     int   // Requeue.MaxAttempts (--max-attempts)
	MaxInfra        int   // TaskFinished and infra Requeue MaxInfra (--max-infra-retries)
	// QuarantineAfter is TaskFinished.QuarantineAfter (--quarantine-after),
	// written only while every voter knows ledger schema 2: an older
	// replica would not count the streak and would diverge.
	QuarantineAfter int
}

// NewID returns a fresh random ID: 12 hex digits (48 bits). The dispatcher
// gives each new task and job one (stamp); a caller that must name a job
// before proposing it (a webhook superseding older jobs by the new one)
// takes one here. Apply refuses a duplicate.
func NewID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stamp is the one place where a command gets the leader's time, its new
// IDs and the mesh's limits, just before it is proposed. It writes through
// c's payload pointers (Submit takes them over) except a spawn's, which it
// copies: the picker fills in its node.
func (d *Dispatcher) stamp(c *raftfsm.Command, now time.Time, gate *roundGate) {
	raftfsm.Stamp(c, now)
	l := d.c.Limits
	switch {
	case c.Type == raftfsm.CmdSpawn && c.Spawn != nil:
		sp := *c.Spawn
		if sp.Task == "" {
			sp.Task = NewID()
		}
		if sp.NewJob != nil && sp.Job == "" {
			sp.Job = NewID()
		}
		if sp.MaxJobTasks == 0 {
			sp.MaxJobTasks = l.MaxJobTasks
		}
		if sp.MaxOpenJobs == 0 {
			sp.MaxOpenJobs = l.MaxOpenJobs
		}
		c.Spawn = &sp
	case c.Type == raftfsm.CmdBlobAdded && c.BlobAdded != nil:
		if c.BlobAdded.MaxJobBytes == 0 {
			c.BlobAdded.MaxJobBytes = l.MaxJobBlobBytes
		}
	case c.Type == raftfsm.CmdTaskFinished && c.TaskFinished != nil:
		if c.TaskFinished.MaxInfra == 0 {
			c.TaskFinished.MaxInfra = l.MaxInfra
		}
		if c.TaskFinished.QuarantineAfter == 0 && l.QuarantineAfter > 0 && gate.allows(raftfsm.SchemaRigs) {
			c.TaskFinished.QuarantineAfter = l.QuarantineAfter
		}
	case c.Type == raftfsm.CmdRequeue && c.Requeue != nil:
		rq := c.Requeue
		if rq.MaxAttempts == 0 {
			rq.MaxAttempts = l.MaxAttempts
		}
		if rq.Infra && rq.MaxInfra == 0 {
			rq.MaxInfra = l.MaxInfra
		}
	}
}

// roundGate asks the dispatcher's schema gate at most once per schema in a
// round: a stamp that adds a field of a newer schema asks it.
type roundGate struct {
	gate   func(need int) error
	answer map[int]bool
}

func (g *roundGate) allows(need int) bool {
	if g.gate == nil {
		return true
	}
	ok, seen := g.answer[need]
	if !seen {
		ok = g.gate(need) == nil
		if g.answer == nil {
			g.answer = map[int]bool{}
		}
		g.answer[need] = ok
	}
	return ok
}
