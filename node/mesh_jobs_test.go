package node_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
)

// wantRefused checks that err is an API answer with status and code.
func wantRefused(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var se *api.StatusError
	if !errors.As(err, &se) || se.HTTPStatus != status || se.Code != code {
		t.Errorf("%s: got %v, want %d %s", what, err, status, code)
	}
}

// TestFailFast checks that a job turns failed at its first failed task
// while it stays open, closes failed naming that task, and that a task's
// token is confined to its own job and cannot cancel.
func TestFailFast(t *testing.T) {
	m, fakes := startFakes(t, 3, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	c := m.Client(0)

	root := spawn(t, c, "t", "root")
	rootProc, _ := procOf(t, fakes, root.Task)
	waitTask(t, c, root.Job, root.Task, "running")
	tc := api.NewClient(specEnv(rootProc.Spec, "OURCI_NODE"), specEnv(rootProc.Spec, "OURCI_TOKEN"))
	var kids []api.SpawnResponse
	var procs []*executor.FakeProcess
	for _, name := range []string{"child-a", "child-b"} {
		k, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{name}, Key: key()})
		if err != nil {
			t.Fatalf("spawn %s with the root's token: %v", name, err)
		}
		if k.Job != root.Job {
			t.Errorf("%s: got job %s, want the root's job %s", name, k.Job, root.Job)
		}
		p, _ := procOf(t, fakes, k.Task)
		kids, procs = append(kids, k), append(procs, p)
	}
	d := job(t, c, root.Job)
	for _, want := range []struct{ task, parent string }{{root.Task, ""}, {kids[0].Task, root.Task}, {kids[1].Task, root.Task}} {
		if tv, ok := task(d, want.task); !ok || tv.Parent != want.parent {
			t.Errorf("task %s: got parent %q (found %v), want %q", want.task, tv.Parent, ok, want.parent)
		}
	}

	procs[0].Finish(3)
	a := waitTask(t, c, root.Job, kids[0].Task, "failed")
	if a.ExitCode == nil || *a.ExitCode != 3 {
		t.Errorf("child a exit code: got %v, want 3", a.ExitCode)
	}
	failedA := "task " + kids[0].Task + " failed"
	checkJob(t, job(t, c, root.Job), "open", "failed", failedA)
	if closed(rootProc.Stopped()) || closed(procs[1].Stopped()) {
		t.Errorf("a failed task stopped its siblings: root stopped %v, child b stopped %v; want both running", closed(rootProc.Stopped()), closed(procs[1].Stopped()))
	}

	// The root's token reads its own job only, and cancels nothing.
	if _, err := tc.Job(ctx, root.Job, 0, 0); err != nil {
		t.Errorf("task token reading its own job: %v", err)
	}
	other := spawn(t, c, "nobody-serves-this", "other")
	_, err := tc.Job(ctx, other.Job, 0, 0)
	wantRefused(t, "task token reading another job", err, http.StatusForbidden, api.CodeForbidden)
	_, err = tc.Cancel(ctx, other.Job)
	wantRefused(t, "task token cancelling another job", err, http.StatusForbidden, api.CodeForbidden)
	_, err = tc.Cancel(ctx, root.Job)
	wantRefused(t, "task token cancelling its own job", err, http.StatusForbidden, api.CodeForbidden)
	checkJob(t, job(t, c, other.Job), "open", "pending", "")

	rootProc.Finish(0)
	procs[1].Finish(0)
	d = m.WaitJob(0, root.Job, waitLong)
	checkJob(t, d, "closed", "failed", failedA)
	if d.Job.Passed != 2 || d.Job.Failed != 1 {
		t.Errorf("job counts: got passed %d failed %d, want 2 and 1", d.Job.Passed, d.Job.Failed)
	}
}

// TestTaskTimeoutKillsAndFails checks that the runner kills a task that
// outlives its timeout and reports it timed out, failing the job.
func TestTaskTimeoutKillsAndFails(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	m := startMesh(t, 2, func(i int, c *node.Config) {
		c.Clock, c.Topics = clk, topics("t")
	})
	ctx := testCtx(t)
	c := m.Client(0)

	r, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"sleep", "1000"}, Key: key(), Timeout: api.Duration(5 * time.Minute)})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	waitTask(t, c, r.Job, r.Task, "running")
	clk.WaitArmed(t, waitLong, 5*time.Minute) // the runner's timer for the attempt
	// Past the timeout but short of the leader's backstop (timeout + 1m),
	// so it is the runner that must act.
	clk.Advance(5*time.Minute + 30*time.Second)

	d := m.WaitJob(0, r.Job, waitLong)
	checkJob(t, d, "closed", "failed", "task "+r.Task+" timed_out")
	tv := d.Tasks[0]
	if tv.State != "timed_out" || tv.Error != "timed out after 5m0s" {
		t.Errorf("task: got state %s error %q, want timed_out %q", tv.State, tv.Error, "timed out after 5m0s")
	}
	if tv.ExitCode == nil || *tv.ExitCode != executor.ExitSIGTERM {
		t.Errorf("task exit code: got %v, want %d (SIGTERM)", tv.ExitCode, executor.ExitSIGTERM)
	}
	out := readLog(t, m.Client(1), r.Task)
	for _, want := range []string{"timed out after 5m0s: stopping the process group", "exit code 143"} {
		if !strings.Contains(out, want) {
			t.Errorf("task log: got %q, want it to contain %q", out, want)
		}
	}
}

// TestJobDeadlineClosesJob checks that the leader closes a job at its
// deadline as error/timed_out, cancelling and stopping its tasks.
func TestJobDeadlineClosesJob(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) {
		c.Clock, c.Topics = clk, topics("t")
	})
	ctx := testCtx(t)
	c := m.Client(0)

	r, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"sleep", "1000"}, Key: key(), JobTimeout: api.Duration(10 * time.Minute)})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	p, _ := procOf(t, fakes, r.Task)
	waitTask(t, c, r.Job, r.Task, "running")
	clk.WaitArmed(t, waitLong, 10*time.Minute) // the leader's deadline timer
	clk.Advance(11 * time.Minute)
	moved := clk.Now()

	var d api.JobDetail
	m.WaitFor(waitLong, "the job closed by its deadline", func() (bool, string) {
		d = job(t, c, r.Job)
		if d.Job.State == "closed" {
			return true, ""
		}
		// The deadline loop may have read the clock just before the move
		// and armed its timer from the new reading; move past that too.
		if clk.Armed(10*time.Minute, moved) > 0 {
			clk.Advance(10 * time.Minute)
			moved = clk.Now()
		}
		return false, "job state " + string(d.Job.State)
	})
	checkJob(t, d, "closed", "error", "timed_out")
	if tv := d.Tasks[0]; tv.State != "cancelled" || tv.Error != "job timed_out" {
		t.Errorf("task: got state %s error %q, want cancelled %q", tv.State, tv.Error, "job timed_out")
	}
	waitClosed(t, p.Stopped(), "the task's process to be stopped at the job's deadline")
}

// readLog reads a task's whole log through c.
func readLog(t *testing.T, c *api.Client, task string) string {
	t.Helper()
	rc, err := c.Log(testCtx(t), task, false)
	if err != nil {
		t.Fatalf("log of %s: %v", task, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read log of %s: %v", task, err)
	}
	return string(b)
}
