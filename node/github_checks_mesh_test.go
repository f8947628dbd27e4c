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
func startAppMesh(t *testing.T, repos string, more ...nodetest.Configure) *ghMesh {
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
		for _, f := range more {
			f(i, c)
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

func TestGitHubRerunFromGitHub(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range g.fakes {
		f.AutoExit(1)
	}
	_, first := g.deliver(t, 1, "pull_request", "r-1", githubtest.PullRequest("opened", "octo", "fw", 7, sha, "feature", false), g.secret)
	g.WaitJob(0, first, 30*time.Second)
	run, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool { return c.ExternalID == first && completedCheck(c) })
	if err != nil {
		t.Fatal(err)
	}

	// Re-run on the failed check run: a new job on the commit, the same pull request.
	body := githubtest.CheckRunRerequested("octo", "fw", 31, run.ID, sha, "feature", 7, false)
	code, second := g.deliver(t, 1, "check_run", "r-2", body, g.secret)
	if code != 201 || second == "" || second == first {
		t.Fatalf("check_run rerequested: got %d job %q, want 201 and a new job", code, second)
	}
	if _, again := g.deliver(t, 0, "check_run", "r-2", body, g.secret); again != second {
		t.Errorf("the same delivery again: got job %q, want %q", again, second)
	}
	if _, again := g.deliver(t, 0, "check_run", "r-2b", body, g.secret); again != second {
		t.Errorf("the same body under another delivery id: got job %q, want %q", again, second)
	}
	d := g.WaitJob(0, second, 30*time.Second)
	if d.Job.Source.SHA != sha || d.Job.Source.PR != 7 || d.Job.Held || !strings.Contains(d.Job.Trigger, "check_run") {
		t.Errorf("re-run job: got %+v held=%v trigger %q, want sha %s, pull request 7, not held", d.Job.Source, d.Job.Held, d.Job.Trigger, sha)
	}
	if _, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, func(c githubtest.CheckRun) bool { return c.ExternalID == second && completedCheck(c) }); err != nil {
		t.Fatal(err)
	}

	// Re-run all: check_suite rerequested; its updated_at moved.
	suite := githubtest.CheckSuiteRerequested("octo", "fw", 31, sha, "feature", 7, false, "2019-05-15T16:00:00Z")
	code, third := g.deliver(t, 2, "check_suite", "r-3", suite, g.secret)
	if code != 201 || third == "" || third == second {
		t.Fatalf("check_suite rerequested: got %d job %q, want 201 and a new job", code, third)
	}
	g.WaitJob(0, third, 30*time.Second)

	// Another App's check run, and a requested action, open nothing.
	for _, c := range []struct {
		kind string
		body []byte
	}{
		{"check_run", githubtest.CheckRunRerequested("octo", "fw", 99, 555, sha, "feature", 7, false)},
		{"check_suite", githubtest.CheckSuiteRerequested("octo", "fw", 99, sha, "feature", 7, false, "2019-05-15T17:00:00Z")},
	} {
		if code, job := g.deliver(t, 0, c.kind, githubtest.NewDelivery(), c.body, g.secret); code != 200 || job != "" {
			t.Errorf("%s of another App: got %d job %q, want 200 and no job", c.kind, code, job)
		}
	}
	if n := len(g.Nodes[0].Status().Jobs); n != 3 {
		t.Errorf("jobs: got %d, want 3", n)
	}
}

func TestGitHubRerunOfAForkWaits(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	// No job of this commit is known and the suite lists no pull request
	// (a fork's branch): whose commit it is is unknown, so it waits.
	_, job := g.deliver(t, 0, "check_suite", "rf-1", githubtest.CheckSuiteRerequested("octo", "fw", 31, sha, "feature", 0, false, "2019-05-15T16:00:00Z"), g.secret)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, _ := g.Client(0).Job(ctx, job, 0, 0); !d.Job.Held {
		t.Errorf("re-run of an unknown commit: got held=%v, want held", d.Job.Held)
	}
	_, fork := g.deliver(t, 0, "check_run", "rf-2", githubtest.CheckRunRerequested("octo", "fw", 31, 5, sha, "feature", 9, true), g.secret)
	if d, _ := g.Client(0).Job(ctx, fork, 0, 0); !d.Job.Held || d.Job.Source.PR != 9 {
		t.Errorf("re-run of a fork's pull request: got held=%v pr %d, want held, 9", d.Job.Held, d.Job.Source.PR)
	}
}

func TestGitHubMergeGroup(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range g.fakes {
		f.AutoExit(0)
	}
	body := githubtest.MergeGroupChecksRequested("octo", "fw", "main", 104, sha)
	code, job := g.deliver(t, 1, "merge_group", "m-1", body, g.secret)
	if code != 201 || job == "" {
		t.Fatalf("merge_group: got %d job %q, want 201 and a job", code, job)
	}
	d := g.WaitJob(0, job, 30*time.Second)
	if d.Job.Status != raftfsm.StatusPassed || d.Job.Source.SHA != sha || !strings.HasPrefix(d.Job.Source.Branch, "gh-readonly-queue/main/pr-104-") || d.Job.Held {
		t.Errorf("merge queue job: got %s %+v held=%v, want passed on the queue's branch and commit", d.Job.Status, d.Job.Source, d.Job.Held)
	}
	run, err := g.api.WaitCheckRun(ctx, "octo", "fw", sha, completedCheck)
	if err != nil {
		t.Fatal(err)
	}
	if run.Name != "ourci" || run.Conclusion != "success" || run.ExternalID != job {
		t.Errorf("check run: got %s %s for %s, want ourci success for %s", run.Name, run.Conclusion, run.ExternalID, job)
	}
}

// A job's check run is recorded with ledger schema 2: while a voter's
// binary knows only schema 1, the App posts commit statuses instead, and
// the ledger never holds what that voter would drop.
func TestGitHubCheckRunsWaitForUpgradedVoters(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startAppMesh(t, repos, func(i int, c *node.Config) {
		if i == 2 {
			c.GossipSchema = 1 // a voter still on a schema-1 binary
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	body := githubtest.PullRequest("opened", "octo", "fw", 8, sha, "feature", false)
	_, job := g.deliver(t, g.Follower(), "pull_request", "c-old-voter", body, g.secret)
	root, _ := g.startedRoot(t, ctx, job)
	root.Finish(0)
	if d := g.WaitJob(0, job, 30*time.Second); d.Job.Status != raftfsm.StatusPassed {
		t.Fatalf("job: got %s, want passed", d.Job.Status)
	}
	g.WaitFor(20*time.Second, "a success commit status posted with the App's token", func() (bool, string) {
		for _, s := range g.api.AllStatuses() {
			if s.SHA == sha && s.State == "success" && strings.HasPrefix(s.Authorization, "token ghs_") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", g.api.AllStatuses())
	})
	if runs := g.api.CheckRuns("octo", "fw", sha); len(runs) != 0 {
		t.Errorf("check runs: got %d, want none while a voter knows only schema 1", len(runs))
	}
	d, err := g.Client(0).Job(ctx, job, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if gh := d.Job.GitHub; gh == nil || gh.CheckRun != 0 || gh.Checked != "" {
		t.Errorf("the job's GitHub record: got %+v, want no check run", gh)
	}
}
