package raftfsm

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func heldRoot(job, task string) Command {
	c := spawnRoot(job, task)
	c.Spawn.NewJob.Held, c.Spawn.NewJob.Deadline = true, time.Time{} // the deadline starts at approval
	c.Spawn.NewJob.GitHub = &GitHub{Owner: "o", Name: "r", Delivery: "d1", Fork: true, Author: Author{Email: "a@example.com"}}
	c.Spawn.Assign = "n1" // the leader never does this for a held job; Apply must not honour it either
	return c
}

func TestHeldJobWaitsForApproval(t *testing.T) {
	l := newLedger(t)
	l.ok(heldRoot("j1", "r"))
	if got := l.task("r").State; got != TaskQueued {
		t.Fatalf("root of a held job: got %s, want queued", got)
	}
	l.refused(assign(Assignment{Task: "r", Attempt: 1, Node: "n1"}), ErrConflict)
	approve := Command{Type: CmdApprove, Approve: &Approve{Job: "j1", By: "alice", Deadline: at(7200), At: at(10)}}
	l.ok(approve)
	if j := l.job("j1"); j.Held || !j.Deadline.Equal(at(7200)) {
		t.Errorf("after approve: got held=%v deadline %v, want false %v", j.Held, j.Deadline, at(7200))
	}
	l.refused(approve, ErrConflict)
	l.ok(assign(Assignment{Task: "r", Attempt: 1, Node: "n1"}))
	if got := l.task("r").State; got != TaskAssigned {
		t.Errorf("after approval: got %s, want assigned", got)
	}
	l.refused(Command{Type: CmdApprove, Approve: &Approve{Job: "nope", At: at(1)}}, ErrNotFound)
}

func TestReportedAndSuperseded(t *testing.T) {
	l := newLedger(t)
	c := spawnRoot("j1", "r")
	c.Spawn.NewJob.GitHub = &GitHub{Owner: "o", Name: "r"}
	l.ok(c)
	l.ok(Command{Type: CmdReported, Reported: &Reported{Job: "j1", Status: "pending"}})
	l.ok(Command{Type: CmdReported, Reported: &Reported{Job: "j1", Notified: "failed"}})
	if g := l.job("j1").GitHub; g.Reported != "pending" || g.Notified != "failed" {
		t.Errorf("got reported %q notified %q, want pending failed", g.Reported, g.Notified)
	}
	l.ok(spawnRoot("plain", "p"))
	l.refused(Command{Type: CmdReported, Reported: &Reported{Job: "plain", Status: "pending"}}, ErrInvalid)

	sup := closeJob("j1", ReasonSuperseded)
	sup.CloseJob.By = "j2"
	l.ok(sup)
	j := l.job("j1")
	if j.State != JobClosed || j.Status != StatusError || j.Reason != ReasonSuperseded || j.Successor != "j2" {
		t.Errorf("superseded: got %s %s %q by %q, want closed error superseded by j2", j.State, j.Status, j.Reason, j.Successor)
	}
	if err := resultErr(l.do(closeJob("plain", "bogus"))); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad reason: got %v, want ErrInvalid", err)
	}
}

func TestForgetExpiredJobs(t *testing.T) {
	l := newLedger(t)
	c := spawnRoot("old", "r1")
	c.Spawn.Key = "k-old"
	l.ok(c)
	l.ok(spawnRoot("live", "r2"))
	l.run("r1", "n1", TaskPassed, 0)
	forget := Command{Type: CmdExpire, Expire: &Expire{Forget: []string{"old", "live"}, At: at(100)}}
	l.ok(forget) // neither is expired yet: nothing happens
	if len(l.s.Jobs) != 2 {
		t.Fatalf("forget before expiry: got %d jobs, want 2", len(l.s.Jobs))
	}
	l.ok(expire([]string{"old"}, nil))
	l.ok(forget)
	if _, ok := l.s.Jobs["old"]; ok || l.s.Tasks["r1"] != nil || l.s.Keys["k-old"] != "" {
		t.Errorf("after forget: job, task or key of the old job still there")
	}
	if want := []string{"live"}; !slices.Equal(l.s.JobOrder, want) || l.s.Jobs["live"] == nil {
		t.Errorf("after forget: got order %v, want %v", l.s.JobOrder, want)
	}
	checkInvariants(t, l.s)
}
