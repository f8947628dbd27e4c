package node_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// waitLong bounds every wait for the mesh to act (assign, start, report,
// close); generous for -race on a loaded two-core machine.
const waitLong = 20 * time.Second

// testCtx is the context for a test's API calls.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startMesh starts n nodes (host executor unless configure sets one) and
// waits until Raft has settled on all of them.
func startMesh(t *testing.T, n int, configure nodetest.Configure) *nodetest.Mesh {
	t.Helper()
	m := nodetest.Start(t, n, configure)
	m.WaitRaft(waitLong)
	return m
}

// startFakes starts n nodes, each with its own fake executor; configure
// (may be nil) adjusts node i further.
func startFakes(t *testing.T, n int, configure nodetest.Configure) (*nodetest.Mesh, []*executor.Fake) {
	t.Helper()
	fakes := make([]*executor.Fake, n)
	for i := range fakes {
		fakes[i] = executor.NewFake()
	}
	m := startMesh(t, n, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		if configure != nil {
			configure(i, c)
		}
	})
	return m, fakes
}

// key is a fresh idempotency key. With one, the client retries a spawn
// through a change of leader; without, a 503 is final. The CLI always
// sends one.
func key() string { return rand.Text() }

// topics returns the Topics of a config subscribing names (host commands).
func topics(names ...string) []node.Topic {
	out := make([]node.Topic, len(names))
	for i, n := range names {
		out[i] = node.Topic{Name: n}
	}
	return out
}

// specEnv returns the value of key in a started spec's environment.
func specEnv(s executor.Spec, key string) string {
	for _, kv := range s.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// procOf waits until one of the fakes starts task and returns the process
// and the index of the node that started it.
func procOf(t *testing.T, fakes []*executor.Fake, task string) (*executor.FakeProcess, int) {
	t.Helper()
	var proc *executor.FakeProcess
	at := -1
	nodetest.WaitFor(t, waitLong, "task "+task+" started on a fake executor", func() (bool, string) {
		for i, f := range fakes {
			for _, p := range f.Procs() {
				if specEnv(p.Spec, "OURCI_TASK") == task {
					proc, at = p, i
					return true, ""
				}
			}
		}
		return false, "no fake process has it"
	})
	return proc, at
}

// spawn opens a new job through c and returns the response.
func spawn(t *testing.T, c *api.Client, topic string, args ...string) api.SpawnResponse {
	t.Helper()
	r, err := c.Spawn(testCtx(t), api.SpawnRequest{Topic: topic, Args: args, Key: key()})
	if err != nil {
		t.Fatalf("spawn on %s %q: %v", topic, args, err)
	}
	return r
}

// job reads a job through c.
func job(t *testing.T, c *api.Client, id string) api.JobDetail {
	t.Helper()
	d, err := c.Job(testCtx(t), id, 0, 0)
	if err != nil {
		t.Fatalf("read job %s: %v", id, err)
	}
	return d
}

// task finds a task in a job detail.
func task(d api.JobDetail, id string) (api.TaskView, bool) {
	for _, tv := range d.Tasks {
		if tv.ID == id {
			return tv, true
		}
	}
	return api.TaskView{}, false
}

// waitTask waits until task id of job, read through c, is in state want.
func waitTask(t *testing.T, c *api.Client, jobID, id string, want string) api.TaskView {
	t.Helper()
	ctx := testCtx(t)
	var tv api.TaskView
	nodetest.WaitFor(t, waitLong, fmt.Sprintf("task %s %s", id, want), func() (bool, string) {
		d, err := c.Job(ctx, jobID, 0, 0)
		if err != nil {
			return false, err.Error()
		}
		var ok bool
		if tv, ok = task(d, id); !ok {
			return false, "task not in job"
		}
		return string(tv.State) == want, fmt.Sprintf("got state %s, want %s", tv.State, want)
	})
	return tv
}

// closed reports whether ch is closed, without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitClosed waits until ch is closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	nodetest.WaitFor(t, waitLong, what, func() (bool, string) { return closed(ch), "not yet" })
}

// checkJob compares a closed job's state, status and reason.
func checkJob(t *testing.T, d api.JobDetail, state, status, reason string) {
	t.Helper()
	if string(d.Job.State) != state || string(d.Job.Status) != status || d.Job.Reason != reason {
		t.Errorf("job %s: got state %s status %s reason %q, want %s %s %q",
			d.Job.ID, d.Job.State, d.Job.Status, d.Job.Reason, state, status, reason)
	}
}

// waitSealed waits until every replica shows the task's current attempt's
// log sealed and held by two nodes (the default --blob-replicas): the
// last ledger entries a finished task makes.
func waitSealed(t *testing.T, m *nodetest.Mesh, task string) {
	t.Helper()
	for i, nd := range m.Nodes {
		m.WaitFor(waitLong, fmt.Sprintf("node%d to show task %s's log sealed on two nodes", i, task), func() (bool, string) {
			holders := -1
			nd.FSM().Read(func(s *raftfsm.State, _ uint64) {
				if tk := s.Tasks[task]; tk != nil {
					for _, l := range tk.Logs {
						if b := s.Blobs[l.Hash]; l.Attempt == tk.Attempt && b != nil {
							holders = len(b.Holders)
						}
					}
				}
			})
			return holders >= min(2, len(m.Nodes)), fmt.Sprintf("holders of its sealed log: %d (-1: not sealed)", holders)
		})
	}
}
