package raftfsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSpawnOpensJob(t *testing.T) {
	l := newLedger(t)
	r := l.ok(spawnRoot("job-1", "root"))
	if r.Job != "job-1" || r.Task != "root" {
		t.Fatalf("result: got job %q task %q, want job-1 root", r.Job, r.Task)
	}
	j := l.job("job-1")
	checks := []struct {
		name      string
		got, want any
	}{
		{"job state", j.State, JobOpen},
		{"job status", j.Status, StatusPending},
		{"job root", j.Root, "root"},
		{"job tasks", fmt.Sprint(j.Tasks), "[root]"},
		{"job open", j.Open, 1},
		{"job passed", j.Passed, 0},
		{"job failed", j.Failed, 0},
		{"job index", j.Index, uint64(1)},
		{"job created", j.CreatedAt, at(0)},
		{"job deadline", j.Deadline, at(3600)},
		{"job trigger", j.Trigger, "push"},
		{"job source", j.Source, Source{Repo: "ourci/ourci", SHA: "c0ffeejob-1", Branch: "main"}},
		{"job closed at", j.ClosedAt.IsZero(), true},
		{"job order", fmt.Sprint(l.s.JobOrder), "[job-1]"},
		{"open jobs", fmt.Sprint(jobIDs(l.s.OpenJobs())), "[job-1]"},
	}
	tk := l.task("root")
	checks = append(checks, []struct {
		name      string
		got, want any
	}{
		{"task job", tk.Job, "job-1"},
		{"task parent", tk.Parent, ""},
		{"task state", tk.State, TaskQueued},
		{"task attempt", tk.Attempt, 1},
		{"task node", tk.Node, ""},
		{"task topic", tk.Topic, "build"},
		{"task args", fmt.Sprint(tk.Args), "[make root]"},
		{"task index", tk.Index, uint64(1)},
		{"task created", tk.CreatedAt, at(0)},
		{"queued", fmt.Sprint(taskIDs(l.s.Queued())), "[root]"},
		{"recent jobs", fmt.Sprint(jobIDs(l.s.RecentJobs(5))), "[job-1]"},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	checkInvariants(t, l.s)
}

func TestSpawnChildren(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	for _, c := range []struct{ task, parent string }{
		{"c1", "root"},
		{"c2", "root"},
		{"g1", "c1"},
		{"c3", "root"},
		{"g2", "c1"},
	} {
		r := l.ok(spawnChild("job-1", c.task, c.parent))
		if r.Job != "job-1" || r.Task != c.task {
			t.Fatalf("spawn %s: got job %q task %q, want job-1 %s", c.task, r.Job, r.Task, c.task)
		}
		if got := l.task(c.task).Parent; got != c.parent {
			t.Errorf("task %s parent: got %q, want %q", c.task, got, c.parent)
		}
	}
	j := l.job("job-1")
	if want := []string{"root", "c1", "c2", "g1", "c3", "g2"}; !slices.Equal(j.Tasks, want) {
		t.Errorf("job tasks: got %v, want %v", j.Tasks, want)
	}
	if want := []string{"c1", "c2", "c3"}; !slices.Equal(l.task("root").Children, want) {
		t.Errorf("root children: got %v, want %v", l.task("root").Children, want)
	}
	if want := []string{"g1", "g2"}; !slices.Equal(l.task("c1").Children, want) {
		t.Errorf("c1 children: got %v, want %v", l.task("c1").Children, want)
	}
	if got := len(l.task("c2").Children); got != 0 {
		t.Errorf("c2 children: got %d, want 0", got)
	}
	if j.Open != 6 {
		t.Errorf("job open: got %d, want 6", j.Open)
	}
	if got, want := taskIDs(l.s.JobTasks("job-1")), j.Tasks; !slices.Equal(got, want) {
		t.Errorf("JobTasks: got %v, want %v", got, want)
	}
	if got := l.s.JobTasks("nope"); got != nil {
		t.Errorf("JobTasks(unknown): got %v, want nil", got)
	}
	checkInvariants(t, l.s)
}

func TestSpawnWithAssign(t *testing.T) {
	l := newLedger(t)
	root := spawnRoot("job-1", "root")
	root.Spawn.Assign = "node-a"
	l.ok(root)
	child := spawnChild("job-1", "c1", "root")
	child.Spawn.Assign = "node-b"
	l.ok(child)
	l.ok(spawnChild("job-1", "c2", "root"))

	for _, c := range []struct {
		task  string
		state TaskState
		node  string
	}{
		{"root", TaskAssigned, "node-a"},
		{"c1", TaskAssigned, "node-b"},
		{"c2", TaskQueued, ""},
	} {
		tk := l.task(c.task)
		if tk.State != c.state || tk.Node != c.node {
			t.Errorf("task %s: got %s on %q, want %s on %q", c.task, tk.State, tk.Node, c.state, c.node)
		}
	}
	if got := l.task("root").AssignedAt; !got.Equal(at(0)) {
		t.Errorf("root assigned at: got %v, want %v", got, at(0))
	}
	if got := l.s.Load("node-a"); got != 1 {
		t.Errorf("Load(node-a): got %d, want 1", got)
	}
	if got := taskIDs(l.s.Active("node-b")); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("Active(node-b): got %v, want [c1]", got)
	}
	if got := taskIDs(l.s.Queued()); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("Queued: got %v, want [c2]", got)
	}
	if got := l.s.ActiveNodes(); !slices.Equal(got, []string{"node-a", "node-b"}) {
		t.Errorf("ActiveNodes: got %v, want [node-a node-b]", got)
	}
	// The assigned root can be started straight away by its node.
	l.ok(started("root", 1, "node-a"))
	checkInvariants(t, l.s)
}

func TestSpawnRefusals(t *testing.T) {
	// One ledger per case, built the same way: an open job with a root, a
	// second open job, and a closed job.
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("open", "r1"))
		l.ok(spawnChild("open", "c1", "r1"))
		l.ok(spawnRoot("other", "r2"))
		l.ok(spawnRoot("closed", "r3"))
		l.run("r3", "n1", TaskPassed, 0)
		if j := l.job("closed"); j.State != JobClosed {
			t.Fatalf("setup: job closed state: got %s, want %s", j.State, JobClosed)
		}
		return l
	}
	withTopic := func(c Command, topic string) Command { c.Spawn.Topic = topic; return c }
	withParent := func(c Command, p string) Command { c.Spawn.Parent = p; return c }
	withTask := func(c Command, id string) Command { c.Spawn.Task = id; return c }
	withJob := func(c Command, id string) Command { c.Spawn.Job = id; return c }

	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"into closed job", spawnChild("closed", "x", "r3"), ErrJobClosed},
		{"into unknown job", spawnChild("nope", "x", "r1"), ErrNotFound},
		{"duplicate task id in same job", spawnChild("open", "c1", "r1"), ErrConflict},
		{"duplicate task id of another job", spawnChild("open", "r2", "r1"), ErrConflict},
		{"duplicate task id as new root", spawnRoot("new", "r1"), ErrConflict},
		{"parent from another job", spawnChild("open", "x", "r2"), ErrInvalid},
		{"unknown parent", spawnChild("open", "x", "ghost"), ErrInvalid},
		{"child without parent", spawnChild("open", "x", ""), ErrInvalid},
		{"missing topic", withTopic(spawnChild("open", "x", "r1"), ""), ErrInvalid},
		{"missing topic on new job", withTopic(spawnRoot("new", "x"), ""), ErrInvalid},
		{"new job root with parent", withParent(spawnRoot("new", "x"), "r1"), ErrInvalid},
		{"new job that exists", spawnRoot("open", "x"), ErrConflict},
		{"new job that exists closed", spawnRoot("closed", "x"), ErrConflict},
		{"missing task id", withTask(spawnChild("open", "x", "r1"), ""), ErrInvalid},
		{"missing job id", withJob(spawnRoot("new", "x"), ""), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := setup(t)
			jobs, tasks := len(l.s.Jobs), len(l.s.Tasks)
			r := l.refused(tt.cmd, tt.want)
			if r.Job != "" || r.Task != "" {
				t.Errorf("result: got job %q task %q, want both empty", r.Job, r.Task)
			}
			if len(l.s.Jobs) != jobs || len(l.s.Tasks) != tasks {
				t.Errorf("counts: got %d jobs %d tasks, want %d jobs %d tasks", len(l.s.Jobs), len(l.s.Tasks), jobs, tasks)
			}
			checkInvariants(t, l.s)
		})
	}
}

func TestSpawnIdempotencyKey(t *testing.T) {
	l := newLedger(t)
	root := spawnRoot("job-1", "root")
	root.Spawn.Key = "push:c0ffee"
	r1 := l.ok(root)

	child := spawnChild("job-1", "c1", "root")
	child.Spawn.Key = "root/c1"
	r2 := l.ok(child)

	jobs, tasks := len(l.s.Jobs), len(l.s.Tasks)
	hash := l.s.Hash()

	tests := []struct {
		name     string
		cmd      Command
		job, tsk string
	}{
		{"same root again", root, "job-1", "root"},
		{"same key, other ids", func() Command {
			c := spawnRoot("job-2", "root-2")
			c.Spawn.Key = "push:c0ffee"
			return c
		}(), "job-1", "root"},
		{"same child key", child, "job-1", "c1"},
		{"child key, other task id", func() Command {
			c := spawnChild("job-1", "c9", "root")
			c.Spawn.Key = "root/c1"
			return c
		}(), "job-1", "c1"},
	}
	for _, tt := range tests {
		r := l.do(tt.cmd)
		if r.Err != nil || r.Job != tt.job || r.Task != tt.tsk {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q, nil)", tt.name, r.Job, r.Task, r.Err, tt.job, tt.tsk)
		}
	}
	if r1.Job != "job-1" || r1.Task != "root" || r2.Task != "c1" {
		t.Errorf("first results: got %+v %+v, want job-1/root and job-1/c1", r1, r2)
	}
	if len(l.s.Jobs) != jobs || len(l.s.Tasks) != tasks {
		t.Errorf("counts: got %d jobs %d tasks, want %d jobs %d tasks", len(l.s.Jobs), len(l.s.Tasks), jobs, tasks)
	}
	if l.s.Hash() != hash {
		t.Errorf("hash: changed by a repeated key, want unchanged")
	}
	if got := l.s.Keys; len(got) != 2 || got["push:c0ffee"] != "root" || got["root/c1"] != "c1" {
		t.Errorf("keys: got %v, want map[push:c0ffee:root root/c1:c1]", got)
	}
	if got := l.task("root").Children; !slices.Equal(got, []string{"c1"}) {
		t.Errorf("root children: got %v, want [c1]", got)
	}

	// The key still answers once the job is closed: a retried spawn must
	// not be told its job closed when its first attempt succeeded.
	l.ok(closeJob("job-1", ReasonCancelled))
	if r := l.do(child); r.Err != nil || r.Task != "c1" {
		t.Errorf("key after close: got (%q, %v), want (c1, nil)", r.Task, r.Err)
	}
	checkInvariants(t, l.s)
}

func TestAssign(t *testing.T) {
	l := newLedger(t)
	// IDs sort differently from spawn order: Queued must follow the index.
	l.ok(spawnRoot("job-1", "t-c"))
	l.ok(spawnChild("job-1", "t-a", "t-c"))
	l.ok(spawnChild("job-1", "t-b", "t-c"))
	l.ok(spawnChild("job-1", "t-0", "t-c"))
	if got, want := taskIDs(l.s.Queued()), []string{"t-c", "t-a", "t-b", "t-0"}; !slices.Equal(got, want) {
		t.Fatalf("Queued: got %v, want %v", got, want)
	}

	l.ok(assign(
		Assignment{Task: "t-b", Attempt: 1, Node: "n1"},
		Assignment{Task: "t-c", Attempt: 1, Node: "n1"},
		Assignment{Task: "t-a", Attempt: 1, Node: "n2"},
	))
	for _, c := range []struct {
		node   string
		load   int
		active []string
	}{
		{"n1", 2, []string{"t-c", "t-b"}},
		{"n2", 1, []string{"t-a"}},
		{"n3", 0, []string{}},
	} {
		if got := l.s.Load(c.node); got != c.load {
			t.Errorf("Load(%s): got %d, want %d", c.node, got, c.load)
		}
		if got := taskIDs(l.s.Active(c.node)); !slices.Equal(got, c.active) {
			t.Errorf("Active(%s): got %v, want %v", c.node, got, c.active)
		}
	}
	if got := taskIDs(l.s.Queued()); !slices.Equal(got, []string{"t-0"}) {
		t.Errorf("Queued: got %v, want [t-0]", got)
	}
	tk := l.task("t-b")
	if tk.State != TaskAssigned || tk.Node != "n1" || !tk.AssignedAt.Equal(at(2)) {
		t.Errorf("t-b: got %s on %q at %v, want assigned on n1 at %v", tk.State, tk.Node, tk.AssignedAt, at(2))
	}
	checkInvariants(t, l.s)
}

func TestAssignRefusalsInBatch(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	for _, id := range []string{"ok1", "stale", "busy", "ok2", "nonode"} {
		l.ok(spawnChild("job-1", id, "root"))
	}
	l.ok(assign(Assignment{Task: "busy", Attempt: 1, Node: "n9"}))

	r := l.do(assign(
		Assignment{Task: "ok1", Attempt: 1, Node: "n1"},
		Assignment{Task: "stale", Attempt: 2, Node: "n1"},
		Assignment{Task: "busy", Attempt: 1, Node: "n1"},
		Assignment{Task: "ghost", Attempt: 1, Node: "n1"},
		Assignment{Task: "nonode", Attempt: 1, Node: ""},
		Assignment{Task: "ok2", Attempt: 1, Node: "n2"},
	))
	for _, want := range []error{ErrStaleAttempt, ErrConflict, ErrNotFound, ErrInvalid} {
		if !errors.Is(r.Err, want) {
			t.Errorf("assign error: got %v, want it to match %v", r.Err, want)
		}
	}
	for _, c := range []struct {
		task  string
		state TaskState
		node  string
	}{
		{"ok1", TaskAssigned, "n1"},
		{"ok2", TaskAssigned, "n2"},
		{"stale", TaskQueued, ""},
		{"busy", TaskAssigned, "n9"},
		{"nonode", TaskQueued, ""},
		{"root", TaskQueued, ""},
	} {
		tk := l.task(c.task)
		if tk.State != c.state || tk.Node != c.node {
			t.Errorf("task %s: got %s on %q, want %s on %q", c.task, tk.State, tk.Node, c.state, c.node)
		}
	}
	if got := l.s.Load("n1"); got != 1 {
		t.Errorf("Load(n1): got %d, want 1", got)
	}
	if got := l.s.Load("n9"); got != 1 {
		t.Errorf("Load(n9): got %d, want 1", got)
	}
	if got := taskIDs(l.s.Queued()); !slices.Equal(got, []string{"root", "stale", "nonode"}) {
		t.Errorf("Queued: got %v, want [root stale nonode]", got)
	}

	// Each refusal alone leaves the state unchanged.
	for _, c := range []struct {
		name string
		item Assignment
		want error
	}{
		{"running task", Assignment{Task: "ok1", Attempt: 1, Node: "n2"}, ErrConflict},
		{"wrong attempt", Assignment{Task: "stale", Attempt: 0, Node: "n2"}, ErrStaleAttempt},
		{"unknown task", Assignment{Task: "ghost", Attempt: 1, Node: "n2"}, ErrNotFound},
		{"no node", Assignment{Task: "stale", Attempt: 1, Node: ""}, ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			l.t = t
			l.refused(assign(c.item), c.want)
		})
	}
	l.t = t
	checkInvariants(t, l.s)
}

func TestStartedFinished(t *testing.T) {
	tests := []struct {
		name     string
		start    bool
		state    TaskState
		code     *int
		errText  string
		status   JobStatus
		passed   int
		failed   int
		wantCode *int
	}{
		{"passed exit 0", true, TaskPassed, intp(0), "", StatusPassed, 1, 0, intp(0)},
		{"failed exit 1", true, TaskFailed, intp(1), "", StatusFailed, 0, 1, intp(1)},
		{"failed exit 137", true, TaskFailed, intp(137), "killed", StatusFailed, 0, 1, intp(137)},
		{"could not start", false, TaskFailed, nil, "image not found", StatusFailed, 0, 1, nil},
		{"timed out", true, TaskTimedOut, intp(-1), "timeout 10m0s", StatusFailed, 0, 1, intp(-1)},
		{"passed without started", false, TaskPassed, intp(0), "", StatusPassed, 1, 0, intp(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			l.ok(spawnRoot("job-1", "root"))
			l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
			if tt.start {
				l.ok(started("root", 1, "n1"))
				tk := l.task("root")
				if tk.State != TaskRunning || !tk.StartedAt.Equal(at(3)) {
					t.Fatalf("after started: got %s at %v, want running at %v", tk.State, tk.StartedAt, at(3))
				}
				// A repeated start report changes nothing.
				h := l.s.Hash()
				l.ok(started("root", 1, "n1"))
				if l.s.Hash() != h {
					t.Fatalf("repeated started: state changed, want unchanged")
				}
				if got := l.s.Load("n1"); got != 1 {
					t.Fatalf("Load(n1) while running: got %d, want 1", got)
				}
			}
			fin := finished("root", 1, "n1", tt.state, tt.code)
			fin.TaskFinished.Error = tt.errText
			l.ok(fin)

			tk := l.task("root")
			if tk.State != tt.state {
				t.Errorf("state: got %s, want %s", tk.State, tt.state)
			}
			switch {
			case tt.wantCode == nil && tk.ExitCode != nil:
				t.Errorf("exit code: got %d, want nil", *tk.ExitCode)
			case tt.wantCode != nil && (tk.ExitCode == nil || *tk.ExitCode != *tt.wantCode):
				t.Errorf("exit code: got %v, want %d", tk.ExitCode, *tt.wantCode)
			}
			if tk.Error != tt.errText {
				t.Errorf("error: got %q, want %q", tk.Error, tt.errText)
			}
			if !tk.FinishedAt.Equal(at(4)) {
				t.Errorf("finished at: got %v, want %v", tk.FinishedAt, at(4))
			}
			wantStart := at(3)
			if !tt.start {
				wantStart = at(4)
			}
			if !tk.StartedAt.Equal(wantStart) {
				t.Errorf("started at: got %v, want %v", tk.StartedAt, wantStart)
			}
			if tk.Node != "n1" {
				t.Errorf("node: got %q, want n1 (kept after finishing)", tk.Node)
			}
			if got := l.s.Load("n1"); got != 0 {
				t.Errorf("Load(n1): got %d, want 0", got)
			}
			j := l.job("job-1")
			if j.State != JobClosed || j.Status != tt.status || j.Passed != tt.passed || j.Failed != tt.failed || j.Open != 0 {
				t.Errorf("job: got %s/%s passed=%d failed=%d open=%d, want closed/%s passed=%d failed=%d open=0",
					j.State, j.Status, j.Passed, j.Failed, j.Open, tt.status, tt.passed, tt.failed)
			}
			if !j.ClosedAt.Equal(at(4)) {
				t.Errorf("job closed at: got %v, want %v", j.ClosedAt, at(4))
			}
			checkInvariants(t, l.s)
		})
	}
}

func TestExitCodeIsCopied(t *testing.T) {
	// The task must not share the command's exit code pointer.
	s := NewState()
	s.Apply(1, spawnRoot("job-1", "root"))
	s.Apply(2, assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
	code := 3
	s.Apply(3, finished("root", 1, "n1", TaskFailed, &code))
	code = 99
	if got := *s.Tasks["root"].ExitCode; got != 3 {
		t.Fatalf("exit code after the command's value changed: got %d, want 3", got)
	}
}

func TestStaleReports(t *testing.T) {
	// root: attempt 1 on n1 was requeued; attempt 2 runs on n2.
	// idle: still queued, attempt 1.
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("job-1", "root"))
		l.ok(spawnChild("job-1", "idle", "root"))
		l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
		l.ok(started("root", 1, "n1"))
		l.ok(requeue("root", 1, 3))
		l.ok(assign(Assignment{Task: "root", Attempt: 2, Node: "n2"}))
		l.ok(started("root", 2, "n2"))
		return l
	}
	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"started from superseded attempt", started("root", 1, "n1"), ErrStaleAttempt},
		{"finished from superseded attempt", finished("root", 1, "n1", TaskPassed, intp(0)), ErrStaleAttempt},
		{"failed from superseded attempt", finished("root", 1, "n1", TaskFailed, intp(2)), ErrStaleAttempt},
		{"finished from another node", finished("root", 2, "n1", TaskPassed, intp(0)), ErrStaleAttempt},
		{"started from another node", started("root", 2, "n3"), ErrStaleAttempt},
		{"finished from a future attempt", finished("root", 3, "n2", TaskPassed, intp(0)), ErrStaleAttempt},
		{"requeue superseded attempt", requeue("root", 1, 3), ErrStaleAttempt},
		{"finished a queued task", finished("idle", 1, "n1", TaskPassed, intp(0)), ErrStaleAttempt},
		{"started a queued task", started("idle", 1, "n1"), ErrStaleAttempt},
		{"requeue a queued task", requeue("idle", 1, 3), ErrStaleAttempt},
		{"finished unknown task", finished("ghost", 1, "n1", TaskPassed, intp(0)), ErrNotFound},
		{"started unknown task", started("ghost", 1, "n1"), ErrNotFound},
		{"requeue unknown task", requeue("ghost", 1, 3), ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := setup(t)
			l.refused(tt.cmd, tt.want)
			if tk := l.task("root"); tk.Attempt != 2 || tk.Node != "n2" || tk.State != TaskRunning {
				t.Errorf("root: got attempt %d on %q %s, want attempt 2 on n2 running", tk.Attempt, tk.Node, tk.State)
			}
		})
	}
	t.Run("current attempt still reports", func(t *testing.T) {
		l := setup(t)
		l.ok(finished("root", 2, "n2", TaskPassed, intp(0)))
	})
}

func TestFinishRefusals(t *testing.T) {
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("job-1", "root"))
		l.ok(spawnChild("job-1", "done", "root"))
		l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
		l.run("done", "n2", TaskPassed, 0)
		return l
	}
	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"already passed", finished("done", 1, "n2", TaskPassed, intp(0)), ErrConflict},
		{"already passed, now failed", finished("done", 1, "n2", TaskFailed, intp(1)), ErrConflict},
		{"started after finish", started("done", 1, "n2"), ErrConflict},
		{"requeue after finish", requeue("done", 1, 3), ErrConflict},
		{"assign after finish", assign(Assignment{Task: "done", Attempt: 1, Node: "n1"}), ErrConflict},
	}
	for _, st := range []TaskState{TaskQueued, TaskAssigned, TaskRunning, TaskCancelled, TaskLost, "", "exploded"} {
		tests = append(tests, struct {
			name string
			cmd  Command
			want error
		}{fmt.Sprintf("finish as %q", st), finished("root", 1, "n1", st, intp(0)), ErrInvalid})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := setup(t)
			l.refused(tt.cmd, tt.want)
		})
	}
}

func TestJobStatus(t *testing.T) {
	type step struct {
		task   string
		state  TaskState
		code   int
		status JobStatus
		jstate JobState
		reason string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"all pass", []step{
			{"c1", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"c2", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"root", TaskPassed, 0, StatusPassed, JobClosed, ""},
		}},
		{"fail fast then others pass", []step{
			{"c1", TaskFailed, 2, StatusFailed, JobOpen, "task c1 failed"},
			{"c2", TaskPassed, 0, StatusFailed, JobOpen, "task c1 failed"},
			{"root", TaskPassed, 0, StatusFailed, JobClosed, "task c1 failed"},
		}},
		{"first failure is the reason", []step{
			{"c2", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"c1", TaskFailed, 1, StatusFailed, JobOpen, "task c1 failed"},
			{"root", TaskFailed, 1, StatusFailed, JobClosed, "task c1 failed"},
		}},
		{"timeout counts as failure", []step{
			{"c1", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"c2", TaskTimedOut, -1, StatusFailed, JobOpen, "task c2 timed_out"},
			{"root", TaskPassed, 0, StatusFailed, JobClosed, "task c2 timed_out"},
		}},
		{"root last fails", []step{
			{"c1", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"c2", TaskPassed, 0, StatusPending, JobOpen, ""},
			{"root", TaskFailed, 1, StatusFailed, JobClosed, "task root failed"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			l.ok(spawnRoot("job-1", "root"))
			l.ok(spawnChild("job-1", "c1", "root"))
			l.ok(spawnChild("job-1", "c2", "root"))
			var passed, failed int
			for i, st := range tt.steps {
				l.run(st.task, "n1", st.state, st.code)
				if st.state == TaskPassed {
					passed++
				} else {
					failed++
				}
				j := l.job("job-1")
				if j.Status != st.status || j.State != st.jstate || j.Reason != st.reason {
					t.Fatalf("step %d (%s %s): got %s/%s reason %q, want %s/%s reason %q",
						i, st.task, st.state, j.Status, j.State, j.Reason, st.status, st.jstate, st.reason)
				}
				if j.Passed != passed || j.Failed != failed || j.Open != 3-passed-failed {
					t.Fatalf("step %d counts: got passed=%d failed=%d open=%d, want %d/%d/%d",
						i, j.Passed, j.Failed, j.Open, passed, failed, 3-passed-failed)
				}
				if got := len(l.s.OpenJobs()) == 1; got != (st.jstate == JobOpen) {
					t.Fatalf("step %d: job listed open: got %v, want %v", i, got, st.jstate == JobOpen)
				}
				if st.jstate == JobClosed && !j.ClosedAt.Equal(at(4)) {
					t.Fatalf("step %d: closed at: got %v, want %v", i, j.ClosedAt, at(4))
				}
				checkInvariants(t, l.s)
			}
		})
	}
}

func TestCloseJob(t *testing.T) {
	// job-1: root running on n1, c1 passed, c2 queued, c3 assigned to n2.
	// job-2: open, untouched; its root is assigned to n1 as well.
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("job-1", "root"))
		for _, id := range []string{"c1", "c2", "c3"} {
			l.ok(spawnChild("job-1", id, "root"))
		}
		l.ok(spawnRoot("job-2", "other"))
		l.ok(assign(
			Assignment{Task: "root", Attempt: 1, Node: "n1"},
			Assignment{Task: "c3", Attempt: 1, Node: "n2"},
			Assignment{Task: "other", Attempt: 1, Node: "n1"},
		))
		l.ok(started("root", 1, "n1"))
		l.run("c1", "n3", TaskPassed, 0)
		return l
	}
	for _, reason := range []string{ReasonTimedOut, ReasonCancelled} {
		t.Run(reason, func(t *testing.T) {
			l := setup(t)
			l.ok(closeJob("job-1", reason))

			j := l.job("job-1")
			if j.State != JobClosed || j.Status != StatusError || j.Reason != reason || !j.ClosedAt.Equal(at(5)) {
				t.Errorf("job: got %s/%s reason %q closed %v, want closed/error reason %q closed %v",
					j.State, j.Status, j.Reason, j.ClosedAt, reason, at(5))
			}
			if j.Open != 0 || j.Passed != 1 || j.Failed != 3 {
				t.Errorf("counts: got open=%d passed=%d failed=%d, want 0/1/3", j.Open, j.Passed, j.Failed)
			}
			for _, c := range []struct {
				task  string
				state TaskState
				err   string
			}{
				{"root", TaskCancelled, "job " + reason},
				{"c1", TaskPassed, ""},
				{"c2", TaskCancelled, "job " + reason},
				{"c3", TaskCancelled, "job " + reason},
			} {
				tk := l.task(c.task)
				if tk.State != c.state || tk.Error != c.err {
					t.Errorf("task %s: got %s %q, want %s %q", c.task, tk.State, tk.Error, c.state, c.err)
				}
			}
			if got := l.task("c2").FinishedAt; !got.Equal(at(5)) {
				t.Errorf("c2 finished at: got %v, want %v", got, at(5))
			}
			if got := taskIDs(l.s.Active("n1")); !slices.Equal(got, []string{"other"}) {
				t.Errorf("Active(n1): got %v, want [other]", got)
			}
			if got := l.s.Load("n2"); got != 0 {
				t.Errorf("Load(n2): got %d, want 0", got)
			}
			if got := taskIDs(l.s.Queued()); len(got) != 0 {
				t.Errorf("Queued: got %v, want []", got)
			}
			if got := jobIDs(l.s.OpenJobs()); !slices.Equal(got, []string{"job-2"}) {
				t.Errorf("OpenJobs: got %v, want [job-2]", got)
			}
			checkInvariants(t, l.s)

			// Refusals after the close: nothing changes.
			for _, c := range []struct {
				name string
				cmd  Command
				want error
			}{
				{"close twice", closeJob("job-1", reason), ErrJobClosed},
				{"close twice other reason", closeJob("job-1", ReasonTimedOut), ErrJobClosed},
				{"late finish of cancelled task", finished("root", 1, "n1", TaskPassed, intp(0)), ErrConflict},
				{"late start of cancelled task", started("c3", 1, "n2"), ErrConflict},
				{"spawn into cancelled job", spawnChild("job-1", "late", "root"), ErrJobClosed},
			} {
				t.Run(c.name, func(t *testing.T) {
					l.t = t
					l.refused(c.cmd, c.want)
					if j.Open != 0 || j.Passed != 1 || j.Failed != 3 {
						t.Errorf("counts: got open=%d passed=%d failed=%d, want 0/1/3", j.Open, j.Passed, j.Failed)
					}
				})
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			name string
			cmd  Command
			want error
		}{
			{"empty reason", closeJob("job-1", ""), ErrInvalid},
			{"unknown reason", closeJob("job-1", "bored"), ErrInvalid},
			{"unknown job", closeJob("ghost", ReasonCancelled), ErrNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				l := setup(t)
				l.refused(c.cmd, c.want)
			})
		}
	})
	t.Run("overrides fail-fast status", func(t *testing.T) {
		l := setup(t)
		l.run("c2", "n3", TaskFailed, 1)
		if j := l.job("job-1"); j.Status != StatusFailed {
			t.Fatalf("before close: status got %s, want %s", j.Status, StatusFailed)
		}
		l.ok(closeJob("job-1", ReasonTimedOut))
		j := l.job("job-1")
		if j.Status != StatusError || j.Reason != ReasonTimedOut {
			t.Errorf("after close: got %s reason %q, want error reason %q", j.Status, j.Reason, ReasonTimedOut)
		}
		checkInvariants(t, l.s)
	})
}

func TestRequeue(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(spawnChild("job-1", "c1", "root"))
	l.ok(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}))
	l.ok(started("root", 1, "n1"))

	// Attempt 1 on n1 is lost: attempt 2 is queued, behind nothing older.
	l.ok(requeue("root", 1, 3))
	tk := l.task("root")
	if tk.Attempt != 2 || tk.State != TaskQueued || tk.Node != "" || tk.Error != "node gone" {
		t.Fatalf("after requeue: got attempt %d %s on %q error %q, want attempt 2 queued on \"\" error \"node gone\"",
			tk.Attempt, tk.State, tk.Node, tk.Error)
	}
	if !tk.AssignedAt.IsZero() || !tk.StartedAt.IsZero() {
		t.Errorf("after requeue: assigned %v started %v, want both zero", tk.AssignedAt, tk.StartedAt)
	}
	if got := taskIDs(l.s.Queued()); !slices.Equal(got, []string{"root", "c1"}) {
		t.Errorf("Queued: got %v, want [root c1] (root keeps its index)", got)
	}
	if got := l.s.Load("n1"); got != 0 {
		t.Errorf("Load(n1): got %d, want 0", got)
	}
	if got := l.s.Active("n1"); len(got) != 0 {
		t.Errorf("Active(n1): got %v, want []", taskIDs(got))
	}
	if got := l.s.ActiveNodes(); len(got) != 0 {
		t.Errorf("ActiveNodes: got %v, want []", got)
	}

	// Attempt 1 cannot be assigned any more; attempt 2 can.
	l.refused(assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}), ErrStaleAttempt)
	l.ok(assign(Assignment{Task: "root", Attempt: 2, Node: "n2"}))
	// Requeue of an assigned (not yet started) attempt works too.
	l.ok(requeue("root", 2, 3))
	l.ok(assign(Assignment{Task: "root", Attempt: 3, Node: "n3"}))
	if got := l.s.Load("n2"); got != 0 {
		t.Errorf("Load(n2): got %d, want 0", got)
	}

	// The third attempt reaches MaxAttempts: the task is lost.
	l.run("c1", "n1", TaskPassed, 0)
	l.ok(requeue("root", 3, 3))
	tk = l.task("root")
	if tk.State != TaskLost || tk.Attempt != 3 {
		t.Errorf("after last requeue: got %s attempt %d, want lost attempt 3", tk.State, tk.Attempt)
	}
	if want := "lost after 3 attempts: node gone"; tk.Error != want {
		t.Errorf("error: got %q, want %q", tk.Error, want)
	}
	if got := l.s.Load("n3"); got != 0 {
		t.Errorf("Load(n3): got %d, want 0", got)
	}
	j := l.job("job-1")
	if j.State != JobClosed || j.Status != StatusFailed || j.Reason != "task root lost" || j.Failed != 1 || j.Passed != 1 {
		t.Errorf("job: got %s/%s reason %q failed=%d passed=%d, want closed/failed reason \"task root lost\" 1/1",
			j.State, j.Status, j.Reason, j.Failed, j.Passed)
	}
	checkInvariants(t, l.s)
}

func TestRequeueUnlimited(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	for a := 1; a <= 10; a++ {
		l.ok(assign(Assignment{Task: "root", Attempt: a, Node: fmt.Sprintf("n%d", a)}))
		l.ok(requeue("root", a, 0))
	}
	if tk := l.task("root"); tk.Attempt != 11 || tk.State != TaskQueued {
		t.Fatalf("root: got attempt %d %s, want attempt 11 queued", tk.Attempt, tk.State)
	}
	checkInvariants(t, l.s)
}

func TestBatch(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-0", "seed"))
	r := l.do(batch(
		spawnRoot("job-1", "root"),
		spawnChild("job-1", "c1", "root"),
		assign(Assignment{Task: "root", Attempt: 1, Node: "n1"}),
		finished("root", 1, "n1", "queued", intp(0)),
		spawnChild("ghost", "c2", "root"),
		started("root", 1, "n1"),
		spawnChild("job-1", "c1", "root"),
	))
	if r.Err != nil {
		t.Errorf("batch Err: got %v, want nil (errors belong to parts)", r.Err)
	}
	want := []struct {
		job, task string
		err       error
	}{
		{"job-1", "root", nil},
		{"job-1", "c1", nil},
		{"", "", nil},
		{"", "", ErrInvalid},
		{"", "", ErrNotFound},
		{"", "", nil},
		{"", "", ErrConflict},
	}
	if len(r.Batch) != len(want) {
		t.Fatalf("batch results: got %d, want %d", len(r.Batch), len(want))
	}
	for i, w := range want {
		got := r.Batch[i]
		if got.Job != w.job || got.Task != w.task || !errors.Is(got.Err, w.err) || (w.err == nil) != (got.Err == nil) {
			t.Errorf("part %d: got (%q, %q, %v), want (%q, %q, %v)", i, got.Job, got.Task, got.Err, w.job, w.task, w.err)
		}
	}
	// Every part of a batch shares the entry's index.
	for _, id := range []string{"root", "c1"} {
		if got := l.task(id).Index; got != l.idx {
			t.Errorf("task %s index: got %d, want %d", id, got, l.idx)
		}
	}
	if tk := l.task("root"); tk.State != TaskRunning {
		t.Errorf("root: got %s, want running", tk.State)
	}
	// Queue order within one entry falls back to the task ID.
	if got := taskIDs(l.s.Queued()); !slices.Equal(got, []string{"seed", "c1"}) {
		t.Errorf("Queued: got %v, want [seed c1]", got)
	}

	empty := l.do(batch())
	if empty.Err != nil || len(empty.Batch) != 0 {
		t.Errorf("empty batch: got %+v, want no error and no parts", empty)
	}
	checkInvariants(t, l.s)
}

func TestRecentJobs(t *testing.T) {
	l := newLedger(t)
	for _, id := range []string{"j-c", "j-a", "j-b"} {
		l.ok(spawnRoot(id, "root-"+id))
	}
	for _, c := range []struct {
		n    int
		want []string
	}{
		{0, []string{}},
		{1, []string{"j-b"}},
		{2, []string{"j-b", "j-a"}},
		{3, []string{"j-b", "j-a", "j-c"}},
		{10, []string{"j-b", "j-a", "j-c"}},
	} {
		if got := jobIDs(l.s.RecentJobs(c.n)); !slices.Equal(got, c.want) {
			t.Errorf("RecentJobs(%d): got %v, want %v", c.n, got, c.want)
		}
	}
}

func TestTaskStateHelpers(t *testing.T) {
	for _, c := range []struct {
		st               TaskState
		terminal, active bool
	}{
		{TaskQueued, false, false},
		{TaskAssigned, false, true},
		{TaskRunning, false, true},
		{TaskPassed, true, false},
		{TaskFailed, true, false},
		{TaskTimedOut, true, false},
		{TaskCancelled, true, false},
		{TaskLost, true, false},
	} {
		if got := c.st.Terminal(); got != c.terminal {
			t.Errorf("%s.Terminal(): got %v, want %v", c.st, got, c.terminal)
		}
		if got := c.st.Active(); got != c.active {
			t.Errorf("%s.Active(): got %v, want %v", c.st, got, c.active)
		}
	}
}

func TestClone(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	l.ok(spawnChild("job-1", "c1", "root"))
	l.run("c1", "n1", TaskFailed, 7)
	tk := l.task("c1").Clone()
	j := l.job("job-1").Clone()
	rc := l.task("root").Clone()

	l.ok(spawnChild("job-1", "c2", "root"))
	tk.Args[0] = "mutated"
	*tk.ExitCode = 100
	j.Tasks[0] = "mutated"
	rc.Children[0] = "mutated"

	if got := l.task("c1"); got.Args[0] != "go" || *got.ExitCode != 7 {
		t.Errorf("task after mutating its clone: got args %v exit %d, want args[0] go exit 7", got.Args, *got.ExitCode)
	}
	if got := l.job("job-1").Tasks; !slices.Equal(got, []string{"root", "c1", "c2"}) {
		t.Errorf("job tasks after mutating its clone: got %v, want [root c1 c2]", got)
	}
	if got := l.task("root").Children; !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("root children after mutating its clone: got %v, want [c1 c2]", got)
	}
}

// genSequence builds a fixed pseudo-random command sequence from seed. It
// steers by a scratch ledger so that most commands are plausible (and apply),
// while some are stale, duplicated or aimed at closed jobs.
func genSequence(t testing.TB, seed uint64, n int) []Command {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	scratch := NewState()
	nodes := []string{"n1", "n2", "n3", "n4"}
	var taskSeq, jobSeq int
	var out []Command

	pickTask := func(pred func(*Task) bool) *Task {
		var ids []string
		for id, tk := range scratch.Tasks {
			if pred(tk) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		slices.Sort(ids)
		return scratch.Tasks[ids[rng.IntN(len(ids))]]
	}
	now := func() time.Time { return at(len(out)) }
	jobIDsSorted := func() []string { return slices.Sorted(maps.Keys(scratch.Jobs)) }
	blobName := []string{"logs", "bin", "report"}
	one := func() Command {
		switch k := rng.IntN(135); {
		case k >= 120 && len(scratch.Tasks) > 0:
			node := nodes[rng.IntN(len(nodes))]
			tk := pickTask(func(t *Task) bool { return true })
			switch {
			case k < 124:
				c := Command{Type: CmdQuarantine, Quarantine: &Quarantine{Node: node, Topic: []string{"build", "test"}[rng.IntN(2)], Reason: "flaky", By: "op", At: now()}}
				return c
			case k < 127:
				return Command{Type: CmdRelease, Release: &Release{Node: node, Topic: []string{"build", "test"}[rng.IntN(2)], At: now()}}
			case k < 131:
				a := Assignment{Task: tk.ID, Attempt: tk.Attempt, Node: node, Device: []string{"esp0", "esp1"}[rng.IntN(2)], LeaseFor: time.Duration(rng.IntN(3)) * time.Minute}
				c := assign(a)
				c.Assign.At = now()
				return c
			case k < 133 && len(scratch.Leases) > 0:
				keys := slices.Sorted(maps.Keys(scratch.Leases))
				l := scratch.Leases[keys[rng.IntN(len(keys))]]
				return Command{Type: CmdLeaseExpire, LeaseExpire: &LeaseExpire{Node: l.Node, Device: l.Device, Task: l.Task, Attempt: l.Attempt, At: now().Add(time.Duration(rng.IntN(4)) * time.Minute)}}
			default:
				return Command{Type: CmdLogSealed, LogSealed: &LogSealed{Task: tk.ID, Log: LogRef{Attempt: 1 + rng.IntN(tk.Attempt), Hash: blobHash(10 + rng.IntN(4)), Size: 50, Bytes: 200, Lines: 3, Node: node}, At: now()}}
			}
		case k >= 100 && len(scratch.Jobs) > 0:
			ids := jobIDsSorted()
			switch {
			case k < 112:
				i := rng.IntN(8)
				size := int64(i * 100)
				if rng.IntN(10) == 0 {
					size++ // conflicts with what the ledger knows
				}
				c := blobAdded(blobHash(i), size, nodes[rng.IntN(len(nodes))], "", "")
				if rng.IntN(10) < 7 {
					c.BlobAdded.Job = ids[rng.IntN(len(ids))]
					if open := scratch.OpenJobs(); len(open) > 0 && rng.IntN(3) > 0 {
						c.BlobAdded.Job = open[rng.IntN(len(open))].ID
					}
				}
				if rng.IntN(2) == 0 {
					c.BlobAdded.Name = blobName[rng.IntN(len(blobName))]
				}
				c.BlobAdded.At = now()
				return c
			case k < 116:
				return blobDropped(blobHash(rng.IntN(8)), nodes[rng.IntN(len(nodes))])
			default:
				var jobs, blobs []string
				for _, id := range ids {
					if scratch.Jobs[id].State == JobClosed && rng.IntN(10) == 0 {
						jobs = append(jobs, id)
					}
				}
				if rng.IntN(4) == 0 {
					jobs = append(jobs, ids[rng.IntN(len(ids))]) // maybe open: skipped
				}
				for i := range 8 {
					if rng.IntN(3) == 0 {
						blobs = append(blobs, blobHash(i))
					}
				}
				c := expire(jobs, blobs)
				c.Expire.At = now()
				if rng.IntN(3) == 0 {
					c.Expire.Logs = jobs
				}
				return c
			}
		case k < 3 || len(scratch.OpenJobs()) == 0 && k < 40 || len(scratch.Jobs) == 0 || k >= 100:
			jobSeq++
			c := spawnRoot(fmt.Sprintf("job-%03d", jobSeq), fmt.Sprintf("t%04d", taskSeq))
			taskSeq++
			c.Spawn.At = now()
			if rng.IntN(4) == 0 {
				c.Spawn.Key = fmt.Sprintf("key-%d", rng.IntN(20))
			}
			if rng.IntN(5) == 0 {
				c.Spawn.Assign = nodes[rng.IntN(len(nodes))]
			}
			return c
		case k < 30:
			p := pickTask(func(t *Task) bool { return scratch.Jobs[t.Job].State == JobOpen })
			if p == nil || rng.IntN(10) == 0 {
				p = pickTask(func(*Task) bool { return true }) // maybe a closed job
			}
			c := spawnChild(p.Job, fmt.Sprintf("t%04d", taskSeq), p.ID)
			taskSeq++
			c.Spawn.At = now()
			if rng.IntN(10) == 0 {
				c.Spawn.Task = p.ID // duplicate
			}
			if rng.IntN(6) == 0 {
				c.Spawn.Key = fmt.Sprintf("key-%d", rng.IntN(20))
			}
			if rng.IntN(5) == 0 {
				c.Spawn.Assign = nodes[rng.IntN(len(nodes))]
			}
			return c
		case k < 50:
			var items []Assignment
			for range 1 + rng.IntN(3) {
				tk := pickTask(func(t *Task) bool { return t.State == TaskQueued })
				if tk == nil {
					tk = pickTask(func(*Task) bool { return true })
				}
				a := tk.Attempt
				if rng.IntN(8) == 0 {
					a--
				}
				items = append(items, Assignment{Task: tk.ID, Attempt: a, Node: nodes[rng.IntN(len(nodes))]})
			}
			c := assign(items...)
			c.Assign.At = now()
			return c
		case k < 62:
			tk := pickTask(func(t *Task) bool { return t.State.Active() })
			if tk == nil {
				tk = pickTask(func(*Task) bool { return true })
			}
			c := started(tk.ID, tk.Attempt, tk.Node)
			c.TaskStarted.At = now()
			return c
		case k < 85:
			tk := pickTask(func(t *Task) bool { return t.State.Active() })
			if tk == nil {
				tk = pickTask(func(*Task) bool { return true })
			}
			st := []TaskState{TaskPassed, TaskPassed, TaskPassed, TaskFailed, TaskTimedOut, TaskInfraFailed}[rng.IntN(6)]
			code := 0
			if st != TaskPassed {
				code = 1 + rng.IntN(200)
			}
			node := tk.Node
			if rng.IntN(10) == 0 {
				node = nodes[rng.IntN(len(nodes))]
			}
			c := finished(tk.ID, tk.Attempt, node, st, intp(code))
			c.TaskFinished.At = now()
			if st == TaskInfraFailed {
				c.TaskFinished.ExitCode, c.TaskFinished.MaxInfra = nil, rng.IntN(3)
			}
			if rng.IntN(2) == 0 {
				c.TaskFinished.QuarantineAfter = 1 + rng.IntN(3)
			}
			return c
		case k < 92:
			tk := pickTask(func(t *Task) bool { return t.State.Active() })
			if tk == nil {
				tk = pickTask(func(*Task) bool { return true })
			}
			c := requeue(tk.ID, tk.Attempt, 1+rng.IntN(3))
			c.Requeue.At = now()
			if rng.IntN(4) == 0 {
				c.Requeue.Infra, c.Requeue.MaxInfra = true, rng.IntN(3)
			}
			return c
		default:
			ids := slices.Sorted(func(yield func(string) bool) {
				for id := range scratch.Jobs {
					if !yield(id) {
						return
					}
				}
			})
			c := closeJob(ids[rng.IntN(len(ids))], []string{ReasonTimedOut, ReasonCancelled}[rng.IntN(2)])
			c.CloseJob.At = now()
			return c
		}
	}
	for len(out) < n {
		var c Command
		if rng.IntN(8) == 0 {
			var parts []Command
			for range 2 + rng.IntN(3) {
				p := one()
				parts = append(parts, p)
				// Applying the parts one by one at one index is what
				// applying the batch does; later parts see earlier ones.
				scratch.Apply(uint64(len(out)+1), p)
			}
			c = batch(parts...)
		} else {
			c = one()
			scratch.Apply(uint64(len(out)+1), c)
		}
		out = append(out, c)
	}
	return out
}

func applyAll(t testing.TB, s *State, from uint64, cmds []Command) []string {
	t.Helper()
	var results []string
	for i, c := range cmds {
		r := s.Apply(from+uint64(i), wire(t, c))
		results = append(results, fmt.Sprintf("%+v", r))
	}
	return results
}

func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 42, 20250314} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cmds := genSequence(t, seed, 600)

			a, b := NewState(), NewState()
			ra := applyAll(t, a, 1, cmds)
			rb := applyAll(t, b, 1, cmds)
			if a.Hash() != b.Hash() {
				t.Fatalf("hash of two runs: got %x, want %x", b.Hash(), a.Hash())
			}
			if !slices.Equal(ra, rb) {
				t.Fatalf("results of two runs differ")
			}
			if !bytes.Equal(snapshotBytes(t, a, 600), snapshotBytes(t, b, 600)) {
				t.Fatalf("snapshot bytes of two runs differ")
			}
			checkInvariants(t, a)

			// The sequence must exercise the ledger, not just bounce off it.
			var refused, passed, failed, closedByForce, expired, named int
			for _, r := range ra {
				if strings.Contains(r, "Err:raftfsm") {
					refused++
				}
			}
			for _, j := range a.Jobs {
				passed += j.Passed
				failed += j.Failed
				if j.Status == StatusError {
					closedByForce++
				}
				if j.Expired {
					expired++
				}
				named += len(j.Blobs)
			}
			t.Logf("passed=%d failed=%d refused=%d forced=%d tasks=%d jobs=%d blobs=%d expired=%d named=%d",
				passed, failed, refused, closedByForce, len(a.Tasks), len(a.Jobs), len(a.Blobs), expired, named)
			if passed < 20 || failed < 10 || refused < 10 || closedByForce < 1 || len(a.Tasks) < 50 || len(a.Blobs) < 2 || expired < 1 || named < 1 {
				t.Fatalf("sequence too tame: passed=%d failed=%d refused=%d forced=%d tasks=%d blobs=%d expired=%d named=%d",
					passed, failed, refused, closedByForce, len(a.Tasks), len(a.Blobs), expired, named)
			}

			// Restore from a snapshot at several points, continue, compare.
			for _, k := range []int{0, 1, 97, 300, 599, 600} {
				c := NewState()
				applyAll(t, c, 1, cmds[:k])
				checkInvariants(t, c)
				d := restore(t, c, uint64(k))
				checkInvariants(t, d)
				if d.Hash() != c.Hash() {
					t.Fatalf("restore at %d: hash got %x, want %x", k, d.Hash(), c.Hash())
				}
				rd := applyAll(t, d, uint64(k)+1, cmds[k:])
				if d.Hash() != a.Hash() {
					t.Fatalf("restore at %d then continue: hash got %x, want %x", k, d.Hash(), a.Hash())
				}
				if !slices.Equal(rd, ra[k:]) {
					t.Fatalf("restore at %d then continue: results differ from the uninterrupted run", k)
				}
				if got, want := taskIDs(d.Queued()), taskIDs(a.Queued()); !slices.Equal(got, want) {
					t.Fatalf("restore at %d: Queued got %v, want %v", k, got, want)
				}
				if got, want := jobIDs(d.OpenJobs()), jobIDs(a.OpenJobs()); !slices.Equal(got, want) {
					t.Fatalf("restore at %d: OpenJobs got %v, want %v", k, got, want)
				}
				checkInvariants(t, d)
			}
		})
	}
}

// TestModified: Job.Modified is the index of the entry that last changed the
// job or one of its tasks, also when the change is one part of a batch.
func TestModified(t *testing.T) {
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("j1", "r1"))                                  // 1
		l.ok(spawnChild("j1", "c1", "r1"))                           // 2
		l.ok(spawnRoot("j2", "r2"))                                  // 3
		l.ok(assign(Assignment{Task: "r1", Attempt: 1, Node: "n1"})) // 4
		return l
	}
	tests := []struct {
		name    string
		cmd     Command
		changed []string // jobs whose Modified must become the new index
	}{
		{"spawn child", spawnChild("j1", "x", "c1"), []string{"j1"}},
		{"spawn new job", spawnRoot("j3", "r3"), []string{"j3"}},
		{"assign", assign(Assignment{Task: "c1", Attempt: 1, Node: "n1"}), []string{"j1"}},
		{"started", started("r1", 1, "n1"), []string{"j1"}},
		{"finished", finished("r1", 1, "n1", TaskPassed, intp(0)), []string{"j1"}},
		{"requeue", requeue("r1", 1, 3), []string{"j1"}},
		{"close", closeJob("j2", ReasonCancelled), []string{"j2"}},
		{"refused spawn", spawnChild("j1", "c1", "r1"), nil},
		{"refused finish", finished("c1", 1, "n1", TaskPassed, intp(0)), nil},
		{"repeated key", spawnRoot("j1", "r1"), nil},
		{"batch touching two jobs", batch(
			spawnChild("j1", "x", "c1"),
			assign(Assignment{Task: "r2", Attempt: 1, Node: "n2"}),
		), []string{"j1", "j2"}},
		{"batch opening two jobs", batch(spawnRoot("j3", "r3"), spawnRoot("j4", "r4")), []string{"j3", "j4"}},
		{"batch: second part changes the job", batch(
			started("r1", 1, "n9"), // refused: wrong node
			started("r1", 1, "n1"),
		), []string{"j1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := setup(t)
			before := map[string]uint64{}
			for id, j := range l.s.Jobs {
				before[id] = j.Modified
			}
			l.do(tt.cmd)
			for id, j := range l.s.Jobs {
				want, ok := before[id]
				if slices.Contains(tt.changed, id) {
					want = l.idx
				} else if !ok {
					t.Errorf("job %s: created but not listed as changed", id)
					continue
				}
				if j.Modified != want {
					t.Errorf("job %s Modified: got %d, want %d", id, j.Modified, want)
				}
			}
			// Modified survives a snapshot round trip.
			r := restore(t, l.s, l.idx)
			for id, j := range l.s.Jobs {
				if got := r.Jobs[id].Modified; got != j.Modified {
					t.Errorf("restored job %s Modified: got %d, want %d", id, got, j.Modified)
				}
			}
		})
	}
	t.Run("setup", func(t *testing.T) {
		l := setup(t)
		for _, c := range []struct {
			job  string
			want uint64
		}{{"j1", 4}, {"j2", 3}} {
			if got := l.job(c.job).Modified; got != c.want {
				t.Errorf("job %s Modified: got %d, want %d", c.job, got, c.want)
			}
		}
	})
}

func TestBlobs(t *testing.T) {
	h1, h2, h3 := blobHash(1), blobHash(2), blobHash(3)
	// open: j1 (root r1); closed: j2.
	setup := func(t *testing.T) *ledger {
		l := newLedger(t)
		l.ok(spawnRoot("j1", "r1"))
		l.ok(spawnRoot("j2", "r2"))
		l.ok(blobAdded(h1, 100, "n2", "j2", "logs"))
		l.ok(closeJob("j2", ReasonCancelled))
		l.ok(blobAdded(h1, 100, "n1", "j1", "logs"))
		return l
	}
	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			name string
			cmd  Command
			want error
		}{
			{"short hash", blobAdded("abc", 1, "n1", "", ""), ErrInvalid},
			{"upper-case hash", blobAdded(strings.ToUpper(h2), 1, "n1", "", ""), ErrInvalid},
			{"non-hex hash", blobAdded(strings.Repeat("g", 64), 1, "n1", "", ""), ErrInvalid},
			{"negative size", blobAdded(h2, -1, "n1", "", ""), ErrInvalid},
			{"no node", blobAdded(h2, 1, "", "", ""), ErrInvalid},
			{"name without job", blobAdded(h2, 1, "n1", "", "logs"), ErrInvalid},
			{"name too long", blobAdded(h2, 1, "n1", "j1", strings.Repeat("x", 201)), ErrInvalid},
			{"unknown job", blobAdded(h2, 1, "n1", "ghost", ""), ErrNotFound},
			{"closed job", blobAdded(h2, 1, "n1", "j2", "x"), ErrJobClosed},
			{"size conflict", blobAdded(h1, 101, "n3", "", ""), ErrConflict},
			{"drop unknown", blobDropped(h3, "n1"), ErrNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				l := setup(t)
				l.refused(c.cmd, c.want)
			})
		}
	})
	t.Run("add, name, drop, expire", func(t *testing.T) {
		l := setup(t)
		b := l.s.Blobs[h1]
		if b == nil || !slices.Equal(b.Holders, []string{"n1", "n2"}) || !slices.Equal(b.Jobs, []string{"j1", "j2"}) || b.Size != 100 || b.Index != 3 {
			t.Fatalf("blob 1: got %+v, want holders [n1 n2] jobs [j1 j2] size 100 index 3", b)
		}
		if got, ok := l.s.ResolveBlob("j1", "logs"); !ok || got.Hash != h1 {
			t.Errorf("ResolveBlob(j1, logs): got %v %v, want %s", got, ok, h1)
		}
		if got, ok := l.s.ResolveBlob("", h1); !ok || got.Hash != h1 {
			t.Errorf("ResolveBlob by hash: got %v %v, want %s", got, ok, h1)
		}
		if _, ok := l.s.ResolveBlob("j1", "missing"); ok {
			t.Errorf("ResolveBlob(j1, missing): got ok, want not found")
		}
		// The same name now points at another blob; the old one stays referenced.
		l.ok(blobAdded(h2, 5, "n1", "j1", "logs"))
		j1 := l.job("j1")
		if j1.Blobs["logs"] != h2 || !slices.Equal(j1.BlobRef, sortedStrings(h1, h2)) {
			t.Errorf("j1 after rename: got names %v refs %v, want logs->%s refs both", j1.Blobs, j1.BlobRef, h2[:8])
		}
		if got := fmt.Sprint(l.s.BlobUsage()); got != "map[n1:[2 105] n2:[1 100]]" {
			t.Errorf("BlobUsage: got %s, want map[n1:[2 105] n2:[1 100]]", got)
		}
		// Adding the same copy again changes nothing.
		h := l.s.Hash()
		l.ok(blobAdded(h1, 100, "n1", "", ""))
		if l.s.Hash() != h {
			t.Errorf("repeated blob add: state changed, want unchanged")
		}
		l.ok(blobDropped(h1, "n2"))
		l.ok(blobDropped(h1, "n9")) // not a holder: nothing to do
		if got := l.s.Blobs[h1].Holders; !slices.Equal(got, []string{"n1"}) {
			t.Errorf("holders after drop: got %v, want [n1]", got)
		}
		// Expire: open j1 is skipped; closed j2 loses its references; h1 is
		// still referenced by j1 and is kept.
		l.ok(expire([]string{"j1", "j2", "ghost"}, []string{h1}))
		if j2 := l.job("j2"); !j2.Expired || j2.Blobs != nil || j2.BlobRef != nil || j2.Modified != l.idx {
			t.Errorf("j2 after expire: got expired=%v names %v refs %v modified %d, want expired, none, none, %d", j2.Expired, j2.Blobs, j2.BlobRef, j2.Modified, l.idx)
		}
		if j1 := l.job("j1"); j1.Expired || len(j1.BlobRef) != 2 {
			t.Errorf("open j1 after expire: got expired=%v refs %v, want untouched", j1.Expired, j1.BlobRef)
		}
		if b := l.s.Blobs[h1]; b == nil || !slices.Equal(b.Jobs, []string{"j1"}) {
			t.Errorf("blob 1 after expire: got %+v, want kept with jobs [j1]", b)
		}
		// Once j1 is closed and expired, h1 and h2 can be forgotten.
		l.ok(closeJob("j1", ReasonTimedOut))
		l.ok(expire([]string{"j1"}, []string{h1, h2, h3}))
		if len(l.s.Blobs) != 0 {
			t.Errorf("blobs after the last expire: got %d, want 0", len(l.s.Blobs))
		}
		if _, ok := l.s.ResolveBlob("j1", "logs"); ok {
			t.Errorf("ResolveBlob after expire: got ok, want not found")
		}
		// Expiring again is a no-op.
		h = l.s.Hash()
		l.ok(expire([]string{"j1", "j2"}, nil))
		if l.s.Hash() != h {
			t.Errorf("second expire: state changed, want unchanged")
		}
		checkInvariants(t, l.s)
	})
}

func sortedStrings(v ...string) []string { return slices.Sorted(slices.Values(v)) }
