package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
)

// TestWriteViaFollowerLands checks that a follower forwards writes to the
// leader and answers only once its own replica holds them.
func TestWriteViaFollowerLands(t *testing.T) {
	m, fakes := startFakes(t, 3, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	f := m.Follower()
	c := m.Client(f)

	r := spawn(t, c, "t", "build")
	// No wait and no retry: the spawn's answer promised the replica has it.
	d, err := c.Job(ctx, r.Job, 0, 0)
	if err != nil {
		t.Fatalf("read job %s on follower node%d right after spawning through it: %v", r.Job, f, err)
	}
	if len(d.Tasks) != 1 || d.Tasks[0].ID != r.Task || d.Job.Root != r.Task {
		t.Fatalf("job on follower: got root %s tasks %+v, want root and only task %s", d.Job.Root, d.Tasks, r.Task)
	}
	p, _ := procOf(t, fakes, r.Task)
	waitTask(t, c, r.Job, r.Task, "running")

	cd, err := c.Cancel(ctx, r.Job)
	if err != nil {
		t.Fatalf("cancel through follower: %v", err)
	}
	checkJob(t, cd, "closed", "error", "cancelled")
	d = job(t, c, r.Job) // again with no wait: the follower's replica has the close
	checkJob(t, d, "closed", "error", "cancelled")
	if d.Tasks[0].State != "cancelled" {
		t.Errorf("task on follower after cancel: got %s, want cancelled", d.Tasks[0].State)
	}
	waitClosed(t, p.Stopped(), "the cancelled task's process to be stopped")
}

// TestCancelStopsTasks checks that cancel ends every task of a job,
// running or queued, stops the running process, and that a late exit does
// not change the verdict. A second cancel is refused.
func TestCancelStopsTasks(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	c := m.Client(0)

	r := spawn(t, c, "t", "root")
	p, _ := procOf(t, fakes, r.Task)
	waitTask(t, c, r.Job, r.Task, "running")
	tc := api.NewClient(specEnv(p.Spec, "OURCI_NODE"), specEnv(p.Spec, "OURCI_TOKEN"))
	queued, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "nobody-serves-this", Args: []string{"child"}, Key: key()})
	if err != nil {
		t.Fatalf("spawn a child with the root's token: %v", err)
	}

	d, err := c.Cancel(ctx, r.Job)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	checkJob(t, d, "closed", "error", "cancelled")
	for _, id := range []string{r.Task, queued.Task} {
		if tv, _ := task(d, id); tv.State != "cancelled" {
			t.Errorf("task %s after cancel: got %s, want cancelled", id, tv.State)
		}
	}
	waitClosed(t, p.Stopped(), "the cancelled task's process to be stopped")
	waitClosed(t, p.Done(), "the cancelled task's process to end")

	_, err = c.Cancel(ctx, r.Job)
	var se *api.StatusError
	if !api.IsCode(err, api.CodeJobClosed) || !errors.As(err, &se) || se.HTTPStatus != http.StatusConflict {
		t.Errorf("second cancel: got %v, want a 409 %s", err, api.CodeJobClosed)
	}
	d = job(t, c, r.Job)
	checkJob(t, d, "closed", "error", "cancelled")
	if d.Tasks[0].State != "cancelled" {
		t.Errorf("root after its process ended: got %s, want cancelled", d.Tasks[0].State)
	}
}

// TestSpawnIntoClosedJobRefused checks that a task of a closed job cannot
// spawn into it, on any node, with a clear error.
func TestSpawnIntoClosedJobRefused(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	r := spawn(t, m.Client(0), "t", "root")
	p, _ := procOf(t, fakes, r.Task)
	waitTask(t, m.Client(0), r.Job, r.Task, "running")
	home := specEnv(p.Spec, "OURCI_NODE")
	token := specEnv(p.Spec, "OURCI_TOKEN")

	// Cancel through the root's own node: its replica has the close when
	// the call returns.
	if _, err := api.NewClient(home, m.Secret.ClusterToken()).Cancel(ctx, r.Job); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	for i, nd := range m.Nodes {
		_, err := api.NewClient(nd.URL(), token).Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"late"}, Key: key()})
		want := "job " + r.Job + " is closed"
		if !api.IsCode(err, api.CodeJobClosed) || !strings.Contains(err.Error(), want) {
			t.Errorf("spawn with a cancelled task's token on node%d: got %v, want %s mentioning %q", i, err, api.CodeJobClosed, want)
		}
	}
	if d := job(t, m.Client(0), r.Job); len(d.Tasks) != 1 {
		t.Errorf("tasks in the closed job: got %d, want 1", len(d.Tasks))
	}
}

// TestUnauthenticatedRefused checks that every API call without a valid
// token of this mesh gets 401 and changes nothing.
func TestUnauthenticatedRefused(t *testing.T) {
	m := startMesh(t, 2, nil)
	ctx := testCtx(t)
	other := node.NewSecret()
	auths := []struct{ name, header string }{
		{"no header", ""},
		{"basic auth", "Basic b3VyY2k6b3VyY2k="},
		{"empty bearer", "Bearer "},
		{"garbage bearer", "Bearer garbage"},
		{"another mesh's cluster token", "Bearer " + other.ClusterToken()},
		{"another mesh's task token", "Bearer " + other.TaskToken("0123456789ab", 1)},
	}
	reqs := []struct{ method, path, body string }{
		{"POST", "/v1/spawn", `{"topic":"t","args":["true"]}`},
		{"GET", "/v1/status", ""},
		{"GET", "/v1/jobs/0123456789ab", ""},
		{"POST", "/v1/jobs/0123456789ab/cancel", "{}"},
		{"GET", "/v1/tasks/0123456789ab/log", ""},
		{"GET", "/v1/tasks/0123456789ab/log/sections", ""},
	}
	for i, nd := range m.Nodes {
		for _, a := range auths {
			for _, rq := range reqs {
				req, err := http.NewRequestWithContext(ctx, rq.method, nd.URL()+rq.path, strings.NewReader(rq.body))
				if err != nil {
					t.Fatal(err)
				}
				if a.header != "" {
					req.Header.Set("Authorization", a.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("node%d %s %s: %v", i, rq.method, rq.path, err)
				}
				var e api.Error
				json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || e.Code != api.CodeUnauthorized {
					t.Errorf("node%d %s %s with %s: got %d %q, want 401 %q", i, rq.method, rq.path, a.name, resp.StatusCode, e.Code, api.CodeUnauthorized)
				}
			}
		}
	}

	// A valid spawn lands after any refused one would have: exactly one job.
	r := spawn(t, m.Client(0), "t", "true")
	for i, nd := range m.Nodes {
		var st api.Status
		m.WaitFor(waitLong, fmt.Sprintf("node%d to see a job", i), func() (bool, string) {
			st = nd.Status()
			return len(st.Jobs) > 0, "no job yet"
		})
		if len(st.Jobs) != 1 || st.Jobs[0].ID != r.Job {
			t.Errorf("jobs on node%d: got %s, want only [%s]", i, jobIDs(st.Jobs), r.Job)
		}
	}
}

func jobIDs(js []api.JobView) string {
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return "[" + strings.Join(ids, " ") + "]"
}
