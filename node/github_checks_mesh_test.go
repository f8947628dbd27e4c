package node_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/github/githubtest"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

var (
	appKeyOnce sync.Once
	appKey     *rsa.PrivateKey
)

func testAppKey() *rsa.PrivateKey {
	appKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		appKey = k
	})
	return appKey
}

// startAppMesh is startGitHubMesh with GitHub App authentication (App 31,
// installed on octo/fw) instead of a token: jobs report check runs. Node 0
// serves no topic, so that tasks run on the others and node 0, which
// starts the mesh and leads it, can be stopped without losing one.
func startAppMesh(t *testing.T, repos string) *ghMesh {
	g := &ghMesh{api: githubtest.New(), smtp: githubtest.NewSMTP(), secret: []byte("It's a Secret to Everybody")}
	t.Cleanup(g.api.Close)
	t.Cleanup(g.smtp.Close)
	g.api.SetApp(31, &testAppKey().PublicKey)
	g.api.Install("octo", "fw", 4100)
	g.fakes = []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	g.Mesh = nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = g.fakes[i]
		if i > 0 {
			c.Topics = []node.Topic{{Name: "ourci/build/docker"}}
		}
		c.GitHub = &node.GitHubConfig{
			WebhookSecret: g.secret, AppID: 31, AppKey: testAppKey(), APIURL: g.api.URL(), Command: []string{"ci/all.sh"},
			CloneURL: filepath.Join(repos, "{owner}", "{repo}.git"), PushBranches: []string{"main"},
			PublicURL: "https://ci.example.com",
		}
	})
	return g
}

func (g *ghMesh) startedTask(t *testing.T, task string) *executor.FakeProcess {
	t.Helper()
	var p *executor.FakeProcess
	g.WaitFor(15*time.Second, "task "+task+" to start", func() (bool, string) {
		for _, f := range g.fakes {
			for _, fp := range f.Procs() {
				if envOf(fp.Spec.Env, "OURCI_TASK") == task {
					p = fp
					return true, ""
				}
			}
		}
		return false, "not yet"
	})
	return p
}

func completedCheck(c githubtest.CheckRun) bool { return c.Status == "completed" }

func TestGitHubCheckRunLifecycle(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	body := githubtest.PullRequest("opened", "octo", "fw", 7, sha, "feature", false)
	_, job := g.deliver(t, g.Follower(), "pull_request", "c-1", body, g.secret)
	run, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool { return c.Status == "in_progress" })
	if err != nil {
		t.Fatal(err)
	}
	if run.Name != "ourci" || run.ExternalID != job || run.DetailsURL != "https://ci.example.com/jobs/"+job || !strings.HasPrefix(run.Authorization, "token ghs_") {
		t.Errorf("check run: got name %q external_id %q details %q auth %.10q, want ourci, the job, its page, an installation token",
			run.Name, run.ExternalID, run.DetailsURL, run.Authorization)
	}
	root, tc := g.startedRoot(t, ctx, job)
	a, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "ourci/build/docker", Args: []string{"make", "test"}, Key: "make"})
	if err != nil {
		t.Fatal(err)
	}
	child := g.startedTask(t, a.Task)
	// 120 compiler errors: annotations go 50 to a request.
	for i := 1; i <= 120; i++ {
		fmt.Fprintf(child.Spec.Output, "src/main.c:%d:5: error: 'x%d' undeclared\n", i, i)
	}
	fmt.Fprintf(child.Spec.Output, "make: *** [Makefile:3: test] Error 1\n")
	child.Finish(2)
	root.Finish(0)
	if d := g.WaitJob(0, job, 30*time.Second); d.Job.Status != raftfsm.StatusFailed {
		t.Fatalf("job: got %s, want failed", d.Job.Status)
	}
	run, err = g.api.WaitCheckRun(ctx, "octo", "fw", sha, completedCheck)
	if err != nil {
		t.Fatal(err)
	}
	if run.Conclusion != "failure" || !slices.Equal(run.History, []string{"in_progress", "in_progress", "in_progress", "completed/failure"}) {
		t.Errorf("check run: got %s, history %v; want failure after in_progress (and two annotation batches)", run.Conclusion, run.History)
	}
	if !slices.Equal(run.AnnotationsPerCall, []int{0, 50, 50, 20}) || len(run.Annotations) != 120 {
		t.Errorf("annotations per request: got %v (%d in all), want [0 50 50 20]", run.AnnotationsPerCall, len(run.Annotations))
	}
	if an := run.Annotations[0]; an.Path != "src/main.c" || an.StartLine != 1 || an.AnnotationLevel != "failure" || !strings.Contains(an.Message, "undeclared") {
		t.Errorf("first annotation: got %+v", an)
	}
	for _, want := range []string{
		"ci/all.sh", "make test", "failed (exit 2)", "https://ci.example.com/tasks/" + a.Task,
		"https://ci.example.com/jobs/" + job, "### Failed:", "make: \\*\\*\\* [Makefile:3: test] Error 1",
	} {
		if !strings.Contains(run.Summary, want) && !strings.Contains(run.Summary, strings.ReplaceAll(want, "\\", "")) {
			t.Errorf("summary lacks %q:\n%s", want, run.Summary)
		}
	}
	if !strings.Contains(run.Summary, "└") {
		t.Errorf("summary shows no task tree:\n%s", run.Summary)
	}
	g.WaitFor(10*time.Second, "the ledger to record the completed check run", func() (bool, string) {
		d, _ := g.Client(2).Job(ctx, job, 0, 0)
		return d.Job.GitHub != nil && d.Job.GitHub.CheckRun == run.ID && d.Job.GitHub.Checked == "completed/failure", fmt.Sprintf("%+v", d.Job.GitHub)
	})
	if n := len(g.api.CheckRuns("octo", "fw", sha)); n != 1 {
		t.Errorf("check runs: got %d, want 1", n)
	}
	if n := len(g.api.AllStatuses()); n != 0 {
		t.Errorf("commit statuses: got %d, want none (check runs instead)", n)
	}
}

func TestGitHubCheckRunForkAndSupersede(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A fork's pull request waits for approval: action_required, then
	// in_progress once approved.
	_, held := g.deliver(t, 0, "pull_request", "cf-1", githubtest.PullRequest("opened", "octo", "fw", 9, sha, "feature", true), g.secret)
	if _, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool {
		return c.ExternalID == held && c.Conclusion == "action_required"
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Client(1).Approve(ctx, held, "maintainer"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool {
		return c.ExternalID == held && c.Status == "in_progress" && len(c.History) > 2
	}); err != nil {
		t.Fatal(err)
	}
	g.startedRoot(t, ctx, held)
	// A newer push supersedes it: neutral, no red mark.
	_, next := g.deliver(t, 0, "pull_request", "cf-2", githubtest.PullRequest("synchronize", "octo", "fw", 9, sha, "feature", true), g.secret)
	old, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool { return c.ExternalID == held && completedCheck(c) })
	if err != nil {
		t.Fatal(err)
	}
	if old.Conclusion != "neutral" || !strings.Contains(old.Summary, next) {
		t.Errorf("superseded job's check run: got %s\n%s\nwant neutral, naming job %s", old.Conclusion, old.Summary, next)
	}
	want := []string{"in_progress", "completed/action_required", "in_progress", "completed/neutral"}
	if !slices.Equal(old.History, want) {
		t.Errorf("history: got %v, want %v", old.History, want)
	}
}

func TestGitHubCheckRunLeaderFailover(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if l := g.Leader(); l != 0 {
		t.Fatalf("leader: got node %d, want node 0 (it starts the mesh)", l)
	}
	_, job := g.deliver(t, 1, "push", "cl-1", githubtest.Push("octo", "fw", "refs/heads/main", sha, "dev@example.com"), g.secret)
	root, _ := g.startedRoot(t, ctx, job)
	g.WaitFor(15*time.Second, "the ledger to record the in_progress check run", func() (bool, string) {
		d, _ := g.Client(1).Job(ctx, job, 0, 0)
		return d.Job.GitHub != nil && d.Job.GitHub.CheckRun != 0 && d.Job.GitHub.Checked == "in_progress", fmt.Sprintf("%+v", d.Job.GitHub)
	})
	g.Nodes[0].Close()
	g.WaitFor(30*time.Second, "a new leader", func() (bool, string) {
		return g.Nodes[1].IsLeader() || g.Nodes[2].IsLeader(), "none yet"
	})
	root.Finish(0)
	if d := g.WaitJob(1, job, 30*time.Second); d.Job.Status != raftfsm.StatusPassed {
		t.Fatalf("job: got %s, want passed", d.Job.Status)
	}
	run, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, completedCheck)
	if err != nil {
		t.Fatal(err)
	}
	if run.Conclusion != "success" {
		t.Errorf("check run: got %s, want success", run.Conclusion)
	}
	// Give a duplicate every chance to show.
	g.WaitFor(10*time.Second, "the ledger to record the completion", func() (bool, string) {
		d, _ := g.Client(1).Job(ctx, job, 0, 0)
		return d.Job.GitHub.Checked == "completed/success", d.Job.GitHub.Checked
	})
	runs := g.api.CheckRuns("octo", "fw", sha)
	if len(runs) != 1 || !slices.Equal(runs[0].History, []string{"in_progress", "completed/success"}) {
		t.Errorf("check runs: got %d, first %v; want exactly one, in_progress then completed/success", len(runs), runs[0].History)
	}
}
