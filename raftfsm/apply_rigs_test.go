package raftfsm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func finishedQ(task string, attempt int, node string, st TaskState, after int) Command {
	c := finished(task, attempt, node, st, nil)
	c.TaskFinished.QuarantineAfter, c.TaskFinished.MaxInfra = after, 5
	c.TaskFinished.Error = "the board did not answer"
	return c
}

// Three infrastructure failures in a row on one rig quarantine it there,
// with the reason; a run that did its work resets the count; release puts
// it back; an operator's quarantine and release are recorded.
func TestRigQuarantine(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	for a := 1; a <= 2; a++ {
		l.ok(assign(Assignment{Task: "root", Attempt: a, Node: "rig-a"}))
		l.ok(finishedQ("root", a, "rig-a", TaskInfraFailed, 3))
	}
	if l.s.Quarantined("rig-a", "build") || l.s.Rigs[RigKey("rig-a", "build")].InfraStreak != 2 {
		t.Fatalf("after two: got %+v, want a streak of 2, not quarantined", l.s.Rigs[RigKey("rig-a", "build")])
	}
	// A pass elsewhere does not reset rig-a; a pass on rig-a does.
	l.ok(spawnChild("job-1", "c1", "root"))
	l.ok(assign(Assignment{Task: "c1", Attempt: 1, Node: "rig-a"}))
	l.ok(finishedQ("c1", 1, "rig-a", TaskPassed, 3))
	if r := l.s.Rigs[RigKey("rig-a", "test")]; r != nil && r.InfraStreak != 0 {
		t.Errorf("another topic's rig: %+v", r)
	}
	l.ok(assign(Assignment{Task: "root", Attempt: 3, Node: "rig-a"}))
	l.ok(finishedQ("root", 3, "rig-a", TaskInfraFailed, 3))
	r := l.s.Rigs[RigKey("rig-a", "build")]
	if !r.Quarantined || r.By != "auto" || !strings.Contains(r.Reason, "3 infrastructure failures in a row") || !strings.Contains(r.Reason, "did not answer") {
		t.Fatalf("after three: got %+v, want quarantined by auto with the reason", r)
	}
	l.refused(Command{Type: CmdRelease, Release: &Release{Node: "rig-b", Topic: "build", At: at(9)}}, ErrConflict)
	l.ok(Command{Type: CmdRelease, Release: &Release{Node: "rig-a", Topic: "build", By: "alice", At: at(9)}})
	if l.s.Quarantined("rig-a", "build") || l.s.Rigs[RigKey("rig-a", "build")].InfraStreak != 0 {
		t.Errorf("after release: %+v", l.s.Rigs[RigKey("rig-a", "build")])
	}
	l.ok(Command{Type: CmdQuarantine, Quarantine: &Quarantine{Node: "rig-b", Topic: "test", Reason: "USB hub dead", By: "bob", At: at(10)}})
	if r := l.s.Rigs[RigKey("rig-b", "test")]; !r.Quarantined || r.Reason != "USB hub dead" || r.By != "bob" {
		t.Errorf("operator quarantine: %+v", r)
	}
	l.refused(Command{Type: CmdQuarantine, Quarantine: &Quarantine{Topic: "test", At: at(10)}}, ErrInvalid)
	// Without QuarantineAfter (an older leader), nothing is tracked.
	before := len(l.s.Rigs)
	l.ok(spawnChild("job-1", "c2", "root"))
	l.ok(assign(Assignment{Task: "c2", Attempt: 1, Node: "rig-c"}))
	l.ok(finishedQ("c2", 1, "rig-c", TaskInfraFailed, 0))
	if len(l.s.Rigs) != before {
		t.Errorf("QuarantineAfter 0 tracked a rig")
	}
	checkInvariants(t, l.s)
	if restore(t, l.s, l.idx).Hash() != l.s.Hash() {
		t.Errorf("snapshot round trip changed the rigs")
	}
}

// A device is held by one attempt at a time, across topics; the lease ends
// with the attempt (finished, requeued, infra-retried, job closed) and on
// expiry.
func TestDeviceLease(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(spawnChild("job-1", "flash", "root"))
	l.ok(spawnChild("job-1", "test", "root"))
	dev := func(task string, attempt int) Assignment {
		return Assignment{Task: task, Attempt: attempt, Node: "rig", Device: "esp0", LeaseFor: time.Hour}
	}
	l.ok(assign(dev("flash", 1)))
	if ls := l.s.LeaseOf("rig", "esp0"); ls == nil || ls.Task != "flash" || !ls.Expires.Equal(at(2).Add(time.Hour)) {
		t.Fatalf("lease: got %+v", ls)
	}
	r := l.do(assign(dev("test", 1)))
	if !errors.Is(r.Err, ErrConflict) || l.task("test").State != TaskQueued {
		t.Fatalf("a second holder: got %v, task %s; want a conflict, still queued", r.Err, l.task("test").State)
	}
	// A spawn assigned on the spot to a held device is refused, changing nothing.
	sp := spawnChild("job-1", "t3", "root")
	sp.Spawn.Assign, sp.Spawn.Device = "rig", "esp0"
	l.refused(sp, ErrConflict)
	// Finished: the device is free.
	l.ok(finished("flash", 1, "rig", TaskPassed, intp(0)))
	if l.s.LeaseOf("rig", "esp0") != nil || l.task("flash").Device != "" {
		t.Fatalf("after the end: lease %+v", l.s.LeaseOf("rig", "esp0"))
	}
	l.ok(assign(dev("test", 1)))
	// Requeued (its node died): free again.
	l.ok(requeue("test", 1, 3))
	if l.s.LeaseOf("rig", "esp0") != nil {
		t.Fatalf("after a requeue: lease remains")
	}
	// Expiry: refused before its time and for another attempt, then ends it.
	l.ok(assign(dev("test", 2)))
	exp := func(attempt int, when time.Time) Command {
		return Command{Type: CmdLeaseExpire, LeaseExpire: &LeaseExpire{Node: "rig", Device: "esp0", Task: "test", Attempt: attempt, At: when}}
	}
	l.refused(exp(2, at(3)), ErrConflict)
	l.refused(exp(1, at(7200)), ErrStaleAttempt)
	l.ok(exp(2, at(2).Add(time.Hour)))
	if l.s.LeaseOf("rig", "esp0") != nil || l.task("test").Device != "" {
		t.Fatalf("after expiry: lease %+v device %q", l.s.LeaseOf("rig", "esp0"), l.task("test").Device)
	}
	// Job closed: every lease of its tasks ends.
	l.ok(spawnChild("job-1", "t4", "root"))
	l.ok(assign(Assignment{Task: "t4", Attempt: 1, Node: "rig", Device: "esp1"}))
	l.ok(closeJob("job-1", ReasonCancelled))
	if len(l.s.Leases) != 0 {
		t.Errorf("after the job closed: leases %v", l.s.Leases)
	}
	checkInvariants(t, l.s)
}

// Priority is kept on the task; the ledger's order is unchanged (the
// leader's picker orders by it).
func TestSpawnPriority(t *testing.T) {
	l := newLedger(t)
	c := spawnRoot("job-1", "root")
	c.Spawn.Priority = 5
	l.ok(c)
	if got := l.task("root").Priority; got != 5 {
		t.Errorf("priority: got %d, want 5", got)
	}
	if need := c.NeedsSchema(); need != 2 {
		t.Errorf("a spawn with a priority needs schema %d, want 2", need)
	}
	if need := spawnRoot("job-2", "r2").NeedsSchema(); need != 1 {
		t.Errorf("a plain spawn needs schema %d, want 1", need)
	}
}

// A sealed log is recorded against (task, attempt): its job refers to the
// blob until the log retention runs out, apart from the blob retention.
func TestLogSealed(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.run("root", "n1", TaskPassed, 0)
	seal := func(attempt int, hash string) Command {
		return Command{Type: CmdLogSealed, LogSealed: &LogSealed{Task: "root", Log: LogRef{Attempt: attempt, Hash: hash, Size: 100, Bytes: 400, Lines: 12, Node: "n1"}, At: at(9)}}
	}
	l.ok(seal(1, blobHash(1)))
	l.refused(seal(1, blobHash(2)), ErrConflict)
	l.refused(seal(2, blobHash(2)), ErrInvalid) // no attempt 2 yet
	tk, j := l.task("root"), l.job("job-1")
	if len(tk.Logs) != 1 || tk.Logs[0].Lines != 12 || len(j.LogRefs) != 1 || len(l.s.Blobs[blobHash(1)].Holders) != 1 {
		t.Fatalf("got logs %+v refs %v blob %+v", tk.Logs, j.LogRefs, l.s.Blobs[blobHash(1)])
	}
	// Blob retention passes: the log stays.
	l.ok(expire([]string{"job-1"}, []string{blobHash(1)}))
	if l.s.Blobs[blobHash(1)] == nil {
		t.Fatalf("the blob retention forgot a sealed log")
	}
	// Log retention passes: it goes.
	l.ok(Command{Type: CmdExpire, Expire: &Expire{Logs: []string{"job-1"}, Blobs: []string{blobHash(1)}, At: at(10)}})
	if l.s.Blobs[blobHash(1)] != nil || !l.job("job-1").LogsExpired {
		t.Fatalf("after the log retention: blob %+v", l.s.Blobs[blobHash(1)])
	}
	l.refused(seal(1, blobHash(3)), ErrConflict)
	checkInvariants(t, l.s)
}

// A job's check run is schema 2: a replica that dropped it would hold
// another ledger than its peers.
func TestReportedCheckRunNeedsSchema2(t *testing.T) {
	for _, tt := range []struct {
		r    Reported
		want int
	}{
		{Reported{Job: "j", Status: "success"}, 1},
		{Reported{Job: "j", CheckRun: 7}, SchemaCheckRuns},
		{Reported{Job: "j", Check: "in_progress"}, SchemaCheckRuns},
	} {
		r := tt.r
		if got := (Command{Type: CmdReported, Reported: &r}).NeedsSchema(); got != tt.want {
			t.Errorf("%+v: got schema %d, want %d", tt.r, got, tt.want)
		}
	}
}
