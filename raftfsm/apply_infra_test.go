package raftfsm

import (
	"slices"
	"strings"
	"testing"
)

// An attempt that failed for the infrastructure is retried on another node,
// up to MaxInfra times, counted apart from node loss; then the task ends
// infra_failed and its job turns error (not failed).
func TestInfraFailureRetriesThenEnds(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(spawnChild("job-1", "c1", "root"))
	l.ok(assign(Assignment{Task: "c1", Attempt: 1, Node: "n1"}))
	l.ok(started("c1", 1, "n1"))

	l.ok(infraFailed("c1", 1, "n1", "its output could not be written: no space left on device", 2))
	tk := l.task("c1")
	if tk.State != TaskQueued || tk.Attempt != 2 || tk.InfraRetries != 1 || !slices.Equal(tk.Avoid, []string{"n1"}) || tk.Node != "" {
		t.Fatalf("after the first infra failure: got %s attempt %d infra %d avoid %v node %q, want queued attempt 2 infra 1 avoid [n1] no node",
			tk.State, tk.Attempt, tk.InfraRetries, tk.Avoid, tk.Node)
	}
	if !strings.Contains(tk.Error, "no space left on device") || !strings.Contains(tk.Error, "n1") {
		t.Errorf("error: got %q, want the reason and the node", tk.Error)
	}
	if tk.InfraError != "on n1: its output could not be written: no space left on device" {
		t.Errorf("infra error: got %q, want the node and the reason", tk.InfraError)
	}
	if j := l.job("job-1"); j.Status != StatusPending {
		t.Errorf("job status after a retried infra failure: got %s, want pending", j.Status)
	}
	// The old attempt is fenced.
	l.refused(finished("c1", 1, "n1", TaskPassed, intp(0)), ErrStaleAttempt)

	// Retried on n2: fails there too; Avoid keeps both, sorted.
	l.ok(assign(Assignment{Task: "c1", Attempt: 2, Node: "n0"}))
	l.ok(infraFailed("c1", 2, "n0", "checkout failed", 2))
	if tk := l.task("c1"); !slices.Equal(tk.Avoid, []string{"n0", "n1"}) || tk.InfraRetries != 2 || tk.Attempt != 3 {
		t.Fatalf("after the second: avoid %v infra %d attempt %d, want [n0 n1] 2 3", tk.Avoid, tk.InfraRetries, tk.Attempt)
	}
	// The third reaches MaxInfra: infra_failed, and the job is error.
	l.ok(assign(Assignment{Task: "c1", Attempt: 3, Node: "n2"}))
	l.ok(infraFailed("c1", 3, "n2", "could not start: image missing", 2))
	tk = l.task("c1")
	if tk.State != TaskInfraFailed || tk.Attempt != 3 || !strings.Contains(tk.Error, "after 2 retries") || !strings.Contains(tk.Error, "image missing") {
		t.Fatalf("after the third: got %s attempt %d error %q, want infra_failed attempt 3 naming the retries and the cause", tk.State, tk.Attempt, tk.Error)
	}
	j := l.job("job-1")
	if j.Status != StatusError || j.State != JobOpen || !strings.HasPrefix(j.Reason, "task c1 infra_failed") {
		t.Errorf("job: got %s/%s reason %q, want open/error reason \"task c1 infra_failed...\"", j.State, j.Status, j.Reason)
	}
	if tk.InfraError != "on n2: could not start: image missing" {
		t.Errorf("infra error: got %q, want the last one", tk.InfraError)
	}
	// A real failure later does not turn it into failed: error stays.
	l.run("root", "n1", TaskFailed, 1)
	if j := l.job("job-1"); j.Status != StatusError || j.State != JobClosed || j.Failed != 2 {
		t.Errorf("job at the end: got %s/%s failed=%d, want closed/error failed=2", j.State, j.Status, j.Failed)
	}
	checkInvariants(t, l.s)
	if got := restore(t, l.s, l.idx).Hash(); got != l.s.Hash() {
		t.Errorf("snapshot round trip: hash changed")
	}
}

// MaxInfra 0 (no retries): the first infrastructure failure ends the task.
func TestInfraFailureWithoutRetries(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
	l.ok(infraFailed("root", 1, "n1", "", 0))
	tk := l.task("root")
	if tk.State != TaskInfraFailed || tk.InfraRetries != 0 || !strings.Contains(tk.Error, "infrastructure failure") {
		t.Fatalf("got %s infra %d error %q, want infra_failed with a default reason", tk.State, tk.InfraRetries, tk.Error)
	}
	if j := l.job("job-1"); j.State != JobClosed || j.Status != StatusError {
		t.Errorf("job: got %s/%s, want closed/error", j.State, j.Status)
	}
	checkInvariants(t, l.s)
}

// A requeue marked Infra (the node is alive but unhealthy) is an
// infrastructure retry: it does not use up node-loss attempts.
// A retry that passes keeps the infrastructure failure's cause visible.
func TestInfraFailureThenPass(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "rig-a"}))
	l.ok(infraFailed("root", 1, "rig-a", "the board did not answer", 2))
	l.run("root", "rig-b", TaskPassed, 0)
	tk := l.task("root")
	if tk.State != TaskPassed || tk.Error != "" || tk.InfraError != "on rig-a: the board did not answer" || tk.InfraRetries != 1 {
		t.Errorf("got %s error %q infra %q retries %d, want passed, no error, the infra cause kept, 1 retry", tk.State, tk.Error, tk.InfraError, tk.InfraRetries)
	}
	if j := l.job("job-1"); j.Status != StatusPassed {
		t.Errorf("job: got %s, want passed", j.Status)
	}
	checkInvariants(t, l.s)
}

func TestRequeueInfra(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	for a := 1; a <= 3; a++ {
		l.ok(assign(Assignment{Task: "root", Attempt: a, Node: "sick"}))
		l.ok(Command{Type: CmdRequeue, Requeue: &Requeue{Task: "root", Attempt: a, Reason: "node sick is unhealthy: disk full", MaxAttempts: 1, Infra: true, MaxInfra: 5, At: at(6)}})
	}
	tk := l.task("root")
	if tk.State != TaskQueued || tk.Attempt != 4 || tk.InfraRetries != 3 || !slices.Equal(tk.Avoid, []string{"sick"}) {
		t.Fatalf("got %s attempt %d infra %d avoid %v, want queued attempt 4 infra 3 avoid [sick] (MaxAttempts 1 does not apply)",
			tk.State, tk.Attempt, tk.InfraRetries, tk.Avoid)
	}
	checkInvariants(t, l.s)
}

// Quotas the leader stamps into commands: open jobs, tasks per job, blob
// bytes per job. Each refusal is ErrQuota and changes nothing.
func TestQuotas(t *testing.T) {
	l := newLedger(t)
	root := func(job, task string, maxOpen int) Command {
		c := spawnRoot(job, task)
		c.Spawn.MaxOpenJobs = maxOpen
		return c
	}
	child := func(task string, maxTasks int) Command {
		c := spawnChild("job-1", task, "root")
		c.Spawn.MaxJobTasks = maxTasks
		return c
	}
	l.ok(root("job-1", "root", 2))
	l.ok(root("job-2", "r2", 2))
	l.refused(root("job-3", "r3", 2), ErrQuota)
	l.ok(root("job-3", "r3", 0)) // 0: no limit

	l.ok(child("c1", 3))
	l.ok(child("c2", 3))
	l.refused(child("c3", 3), ErrQuota) // root, c1, c2: three tasks

	add := func(i int, size, max int64) Command {
		c := blobAdded(blobHash(i), size, "n1", "job-1", "")
		c.BlobAdded.MaxJobBytes = max
		return c
	}
	l.ok(add(1, 600, 1000))
	l.refused(add(2, 500, 1000), ErrQuota)
	l.ok(add(2, 400, 1000))
	// Another holder of a blob the job refers to already is no new bytes.
	again := add(1, 600, 1000)
	again.BlobAdded.Node = "n2"
	l.ok(again)
	if got := l.s.Blobs[blobHash(1)].Holders; !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("holders: got %v, want [n1 n2]", got)
	}
	checkInvariants(t, l.s)
}
