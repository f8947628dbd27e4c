package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

func statusErr(err error) (int, string) {
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.HTTPStatus, se.Code
	}
	return 0, ""
}

// awaitTask returns the fake process of a task once it started anywhere.
func awaitTask(t *testing.T, m *nodetest.Mesh, fakes []*executor.Fake, task string) *executor.FakeProcess {
	t.Helper()
	var p *executor.FakeProcess
	m.WaitFor(20*time.Second, "task "+task+" to start", func() (bool, string) {
		for _, f := range fakes {
			for _, q := range f.Procs() {
				if envOf(q.Spec.Env, "OURCI_TASK") == task {
					p = q
					return true, ""
				}
			}
		}
		return false, "not started"
	})
	return p
}

func taskClient(p *executor.FakeProcess) *api.Client {
	return api.NewClient(envOf(p.Spec.Env, "OURCI_NODE"), envOf(p.Spec.Env, "OURCI_TOKEN"))
}

// Privilege flows down only: a container's task cannot spawn into a host
// topic (403 naming the rule) unless the host node allows it
// (--topic-accept); the seed's Docker build → agent hand-off is accepted.
func TestContainerCannotSpawnOntoHost(t *testing.T) {
	fakes := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		switch i {
		case 0:
			c.Topics = []node.Topic{{Name: "host"}}
		case 1:
			c.Topics = []node.Topic{{Name: "build", Executor: executor.KindDocker}, {Name: "rig", Agent: "/bin/true"}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.Client(2).Spawn(ctx, api.SpawnRequest{Topic: "build", Image: "base:1", Args: []string{"ci/all.sh"}})
	if err != nil {
		t.Fatal(err)
	}
	build := awaitTask(t, m, fakes, res.Task)
	tc := taskClient(build)

	_, err = tc.Spawn(ctx, api.SpawnRequest{Topic: "host", Args: []string{"id; cat /root/.ourci/cluster.secret"}})
	if code, kind := statusErr(err); code != http.StatusForbidden || kind != api.CodeForbidden || !strings.Contains(err.Error(), "--topic-accept host=") || !strings.Contains(err.Error(), "docker task") {
		t.Fatalf("a container's task spawning onto a host topic: got %v, want 403 naming the rule", err)
	}
	// The seed's hand-off, a Docker build spawning a hardware test on an
	// agent topic, works untouched.
	rig, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "rig", Args: []string{"fw.tar.gz", "test.sh"}})
	if err != nil {
		t.Fatalf("a Docker task spawning onto an agent topic: got %v, want it accepted", err)
	}
	awaitTask(t, m, fakes, rig.Task).Finish(0)
	// node0 allows its host topic children of build tasks: accepted, runs.
	if err := m.Nodes[0].SetOffer([]node.Topic{{Name: "host", Accept: []string{"operator", "topic:build"}}}, 2); err != nil {
		t.Fatal(err)
	}
	var child api.SpawnResponse
	m.WaitFor(10*time.Second, "the allowed spawn to be accepted", func() (bool, string) {
		child, err = tc.Spawn(ctx, api.SpawnRequest{Topic: "host", Args: []string{"allowed"}, Key: "allowed"})
		return err == nil, fmt.Sprint(err)
	})
	awaitTask(t, m, fakes, child.Task).Finish(0)

	// node0 stops allowing it: a spawn is refused again.
	if err := m.Nodes[0].SetOffer([]node.Topic{{Name: "host"}}, 2); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(10*time.Second, "the rule gone again", func() (bool, string) {
		_, err = tc.Spawn(ctx, api.SpawnRequest{Topic: "host", Args: []string{"again"}})
		code, _ := statusErr(err)
		return code == http.StatusForbidden, fmt.Sprint(err)
	})
	build.Finish(0)
	d := m.WaitJob(2, res.Job, 30*time.Second)
	for _, tk := range d.Tasks {
		if tk.Topic == "host" && tk.Args[0] != "allowed" {
			t.Errorf("a refused spawn is in the ledger: %+v", tk)
		}
	}
}

// --env may not set loader, shell-startup, search-path or OurCI variables
// (400 listing them), unless the topic's node allows the name.
func TestSpawnEnvInjectionRefused(t *testing.T) {
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.Executor = autoExit(0)
		c.Topics = []node.Topic{{Name: "rig", Agent: "/bin/true"}, {Name: "lenient", EnvAllow: []string{"PATH"}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, env := range [][]string{{"LD_PRELOAD=/tmp/evil.so"}, {"BASH_ENV=/tmp/evil.sh"}, {"BASH_FUNC_echo%%=() { id; }"}, {"PATH=/tmp/evil"}, {"IFS=/"}, {"ENV=/tmp/x"}, {"OURCI_TOKEN=forged"}} {
		_, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "rig", Args: []string{"x"}, Env: env})
		name, _, _ := strings.Cut(env[0], "=")
		if code, _ := statusErr(err); code != http.StatusBadRequest || !strings.Contains(err.Error(), name) {
			t.Errorf("--env %s: got %v, want 400 naming %s", env[0], err, name)
		}
	}
	if _, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "rig", Args: []string{"x"}, Env: []string{"FW_BLOB=fw.tar.gz", "CC=gcc"}}); err != nil {
		t.Errorf("ordinary --env: got %v, want accepted", err)
	}
	if _, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "lenient", Args: []string{"x"}, Env: []string{"PATH=/opt/sdk/bin:/usr/bin:/bin"}}); err != nil {
		t.Errorf("--env PATH on a topic that allows it: got %v, want accepted", err)
	}
}

// Quotas: spawn bytes (413), open jobs and tasks per job (429), blob size
// (413) and blob bytes per job (429); counted in metrics.
func TestQuotasRefuseWithClearErrors(t *testing.T) {
	fakes := []*executor.Fake{executor.NewFake()}
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		c.Topics = []node.Topic{{Name: "t"}}
		c.MaxSpawnBytes, c.MaxOpenJobs, c.MaxTasksPerJob = 1000, 2, 3
		c.MaxBlobBytes, c.MaxJobBlobBytes = 3000, 5000
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := m.Client(0)
	_, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{strings.Repeat("a", 1200)}})
	if code, kind := statusErr(err); code != http.StatusRequestEntityTooLarge || kind != api.CodeQuota || !strings.Contains(err.Error(), "--max-spawn-bytes") {
		t.Errorf("a 1200-byte spawn: got %v, want 413 quota naming --max-spawn-bytes", err)
	}
	j1, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"one"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"two"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"three"}})
	if code, kind := statusErr(err); code != http.StatusTooManyRequests || kind != api.CodeQuota || !strings.Contains(err.Error(), "--max-open-jobs") {
		t.Errorf("a third open job: got %v, want 429 naming --max-open-jobs", err)
	}
	root := awaitTask(t, m, fakes, j1.Task)
	tc := taskClient(root)
	for k := 0; k < 2; k++ {
		if _, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"child"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = tc.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"child"}})
	if code, _ := statusErr(err); code != http.StatusTooManyRequests || !strings.Contains(err.Error(), "--max-tasks-per-job") {
		t.Errorf("a fourth task in the job: got %v, want 429 naming --max-tasks-per-job", err)
	}
	_, err = c.PutBlob(ctx, bytes.NewReader(make([]byte, 4000)), url.Values{"job": {j1.Job}})
	if code, _ := statusErr(err); code != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "--max-blob-bytes") {
		t.Errorf("a 4000-byte blob: got %v, want 413 naming --max-blob-bytes", err)
	}
	for k := 0; k < 2; k++ {
		if _, err := c.PutBlob(ctx, bytes.NewReader(bytes.Repeat([]byte{byte(k)}, 2400)), url.Values{"job": {j1.Job}}); err != nil {
			t.Fatalf("blob %d: %v", k, err)
		}
	}
	_, err = c.PutBlob(ctx, bytes.NewReader(bytes.Repeat([]byte{9}, 2400)), url.Values{"job": {j1.Job}})
	if code, _ := statusErr(err); code != http.StatusTooManyRequests || !strings.Contains(err.Error(), "--max-job-blob-bytes") {
		t.Errorf("a third 2400-byte blob in the job: got %v, want 429 naming --max-job-blob-bytes", err)
	}
	if d, _ := c.Job(ctx, j1.Job, 0, 0); len(d.Tasks) != 3 || d.Job.State != raftfsm.JobOpen {
		t.Errorf("the job: got %d tasks, state %s; want 3, open", len(d.Tasks), d.Job.State)
	}
	fams := scrapeMetrics(t, m.Nodes[0], m.Secret.ClusterToken())
	for _, q := range []string{"spawn_bytes", "open_jobs", "job_tasks", "blob_bytes", "job_blob_bytes"} {
		if got := metricValue(fams, "ourci_quota_refused_total", "quota", q); got != 1 {
			t.Errorf("ourci_quota_refused_total{quota=%q}: got %v, want 1", q, got)
		}
	}
}

// The seed's spawn_task form: the first argument is the image on a Docker
// topic, an argument elsewhere ("-" dropped), refused where a topic is
// served both ways.
func TestSpawnImageFirst(t *testing.T) {
	fakes := []*executor.Fake{autoExit(0), autoExit(0)}
	m := nodetest.Start(t, 2, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		c.Topics = []node.Topic{{Name: "build", Executor: executor.KindDocker}, {Name: "rig", Agent: "/bin/true"}, {Name: "mixed", Executor: map[bool]executor.Kind{true: executor.KindDocker}[i == 0]}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cases := []struct {
		topic       string
		args        []string
		wantImage   string
		wantArgs    string
		wantRefusal string
	}{
		{"build", []string{"base:1", "ci/v7.sh"}, "base:1", "ci/v7.sh", ""},
		{"rig", []string{"fw.tar.gz", "test.sh"}, "", "fw.tar.gz test.sh", ""},
		{"rig", []string{"-", "fw.tar.gz", "test.sh"}, "", "fw.tar.gz test.sh", ""},
		{"build", []string{"-", "ci/v7.sh"}, "", "", "the first argument"},
		{"mixed", []string{"base:1", "x"}, "", "", "both in Docker"},
	}
	for _, c := range cases {
		res, err := m.Client(1).Spawn(ctx, api.SpawnRequest{Topic: c.topic, Args: c.args, ImageFirst: true})
		if c.wantRefusal != "" {
			if code, _ := statusErr(err); code != http.StatusBadRequest || !strings.Contains(err.Error(), c.wantRefusal) {
				t.Errorf("%s %q: got %v, want 400 saying %q", c.topic, c.args, err, c.wantRefusal)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %q: %v", c.topic, c.args, err)
		}
		d := m.WaitJob(1, res.Job, 30*time.Second)
		if tk := d.Tasks[0]; tk.Image != c.wantImage || strings.Join(tk.Args, " ") != c.wantArgs {
			t.Errorf("%s %q: got image %q args %q, want %q %q", c.topic, c.args, tk.Image, tk.Args, c.wantImage, c.wantArgs)
		}
	}
}
