package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// localRepo makes DIR/owner/repo.git with one commit and returns its SHA.
func localRepo(t *testing.T, dir, owner, repo string) string {
	t.Helper()
	bare := filepath.Join(dir, owner, repo+".git")
	work := filepath.Join(t.TempDir(), "w")
	git := func(d string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", d, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(filepath.Dir(bare), 0o755)
	git(filepath.Dir(bare), "init", "-q", "--bare", bare)
	os.MkdirAll(work, 0o755)
	git(work, "init", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello\n"), 0o644)
	git(work, "add", ".")
	git(work, "commit", "-qm", "one")
	git(work, "push", "-q", bare, "feature")
	return git(work, "rev-parse", "HEAD")
}

type ghMesh struct {
	*nodetest.Mesh
	api    *githubtest.Server
	smtp   *githubtest.SMTPServer
	secret []byte
	fakes  []*executor.Fake
}

func startGitHubMesh(t *testing.T, repos string) *ghMesh {
	g := &ghMesh{api: githubtest.New(), smtp: githubtest.NewSMTP(), secret: []byte("It's a Secret to Everybody")}
	t.Cleanup(g.api.Close)
	t.Cleanup(g.smtp.Close)
	g.fakes = []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	g.Mesh = nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = g.fakes[i]
		c.Topics = []node.Topic{{Name: "ourci/build/docker"}}
		c.GitHub = &node.GitHubConfig{
			WebhookSecret: g.secret, Token: "test-token", APIURL: g.api.URL(), Command: []string{"ci/all.sh"},
			CloneURL: filepath.Join(repos, "{owner}", "{repo}.git"), PushBranches: []string{"main"},
			PublicURL: "https://ci.example.com",
			Notify:    &github.Notifier{SMTPAddr: g.smtp.Addr(), SMTPFrom: "ourci@example.com"},
		}
	})
	return g
}

// deliver posts a webhook to node i and returns the status and the job.
func (g *ghMesh) deliver(t *testing.T, i int, kind, delivery string, body []byte, secret []byte) (int, string) {
	t.Helper()
	req, err := githubtest.NewWebhookRequest(g.Nodes[i].URL()+"/webhook/github", secret, kind, delivery, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.SpawnResponse
	decodeJSON(resp.Body, &out)
	return resp.StatusCode, out.Job
}

// startedRoot waits for the job's root task to start on some fake and
// returns it with an API client holding the task's token.
func (g *ghMesh) startedRoot(t *testing.T, ctx context.Context, job string) (*executor.FakeProcess, *api.Client) {
	t.Helper()
	var p *executor.FakeProcess
	g.WaitFor(15*time.Second, "the root of "+job+" to start", func() (bool, string) {
		for _, f := range g.fakes {
			for _, fp := range f.Procs() {
				if envOf(fp.Spec.Env, "OURCI_JOB") == job {
					p = fp
					return true, ""
				}
			}
		}
		return false, "not yet"
	})
	return p, api.NewClient(envOf(p.Spec.Env, "OURCI_NODE"), envOf(p.Spec.Env, "OURCI_TOKEN"))
}

func TestGitHubPullRequestStatuses(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startGitHubMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g.api.SetAuthorEmail(sha, "dev@example.com")
	follower := g.Follower()

	// A forged signature and a ping change nothing.
	body := githubtest.PullRequest("opened", "octo", "fw", 7, sha, "feature", false)
	if code, _ := g.deliver(t, follower, "pull_request", "d-forged", body, []byte("wrong")); code != http.StatusUnauthorized {
		t.Fatalf("forged signature: got %d, want 401", code)
	}
	if code, _ := g.deliver(t, follower, "ping", "d-ping", []byte(`{"zen":"Keep it logically awesome."}`), g.secret); code != http.StatusOK {
		t.Fatalf("ping: got %d, want 200", code)
	}
	if st := g.Nodes[0].Status(); len(st.Jobs) != 0 {
		t.Fatalf("after a forged delivery and a ping: got %d jobs, want 0", len(st.Jobs))
	}

	// A pull request opens a job through a follower; a replay opens nothing.
	code, job := g.deliver(t, follower, "pull_request", "d-1", body, g.secret)
	if code != http.StatusCreated || job == "" {
		t.Fatalf("pull_request: got %d job %q, want 201 and a job", code, job)
	}
	if _, again := g.deliver(t, 0, "pull_request", "d-1", body, g.secret); again != job {
		t.Fatalf("replayed delivery: got job %q, want %q", again, job)
	}
	if err := g.api.WaitStatus(ctx, "octo", "fw", sha, "pending"); err != nil {
		t.Fatalf("pending status: %v", err)
	}
	root, tc := g.startedRoot(t, ctx, job)
	if got := envOf(root.Spec.Env, "OURCI_PR"); got != "7" {
		t.Errorf("OURCI_PR: got %q, want 7", got)
	}
	a, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "ourci/build/docker", Args: []string{"a"}, Key: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// The first failure turns the status to failure while the job runs on.
	var childA *executor.FakeProcess
	g.WaitFor(15*time.Second, "child a to start", func() (bool, string) {
		for _, f := range g.fakes {
			for _, fp := range f.Procs() {
				if envOf(fp.Spec.Env, "OURCI_TASK") == a.Task {
					childA = fp
					return true, ""
				}
			}
		}
		return false, "not yet"
	})
	childA.Finish(2)
	if err := g.api.WaitStatus(ctx, "octo", "fw", sha, "failure"); err != nil {
		t.Fatalf("failure status: %v", err)
	}
	if d, _ := g.Client(0).Job(ctx, job, 0, 0); d.Job.State != raftfsm.JobOpen {
		t.Errorf("job when the failure status went out: got %s, want open", d.Job.State)
	}
	msg, err := g.smtp.WaitMessage(ctx)
	if err != nil {
		t.Fatalf("failure mail: %v", err)
	}
	if len(msg.To) != 1 || msg.To[0] != "dev@example.com" || !strings.Contains(string(msg.Data), "https://ci.example.com/jobs/"+job) {
		t.Errorf("failure mail: got to %v\n%s\nwant to dev@example.com with a link to the job", msg.To, msg.Data)
	}
	root.Finish(0)
	d := g.WaitJob(0, job, 30*time.Second)
	if d.Job.Status != raftfsm.StatusFailed || d.Job.GitHub == nil {
		t.Fatalf("job: got %s, want failed with its GitHub record", d.Job.Status)
	}
	g.WaitFor(10*time.Second, "the ledger to record the acknowledged status", func() (bool, string) {
		d, _ := g.Client(2).Job(ctx, job, 0, 0)
		return d.Job.GitHub != nil && d.Job.GitHub.Reported == "failure", fmt.Sprintf("%+v", d.Job.GitHub)
	})
	for _, s := range g.api.Statuses("octo", "fw", sha) {
		if s.Context != "ourci" || s.TargetURL != "https://ci.example.com/jobs/"+job || s.Authorization != "token test-token" {
			t.Errorf("status %+v: want context ourci, the job's URL and the token", s)
		}
	}

	// The next push to the pull request passes: the author hears it recovered.
	next := githubtest.PullRequest("synchronize", "octo", "fw", 7, sha, "feature", false)
	_, job2 := g.deliver(t, follower, "pull_request", "d-2", next, g.secret)
	root2, _ := g.startedRoot(t, ctx, job2)
	root2.Finish(0)
	if d := g.WaitJob(0, job2, 30*time.Second); d.Job.Status != raftfsm.StatusPassed {
		t.Fatalf("second job: got %s, want passed", d.Job.Status)
	}
	msg, err = g.smtp.WaitMessage(ctx)
	if err != nil {
		t.Fatalf("recovery mail: %v", err)
	}
	if data := string(msg.Data); !strings.Contains(data, "recovered") || !strings.Contains(data, job2) {
		t.Errorf("recovery mail: got\n%s\nwant a recovered notice naming job %s", data, job2)
	}
}

func TestGitHubForkWaitsAndSupersede(t *testing.T) {
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	g := startGitHubMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	body := githubtest.PullRequest("opened", "octo", "fw", 9, sha, "feature", true)
	_, held := g.deliver(t, 0, "pull_request", "f-1", body, g.secret)
	if err := g.api.WaitStatus(ctx, "octo", "fw", sha, "pending"); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.Client(0).Job(ctx, held, 0, 0); !d.Job.Held || !strings.Contains(d.Tasks[0].Waiting, "approve") {
		t.Fatalf("fork job: got held=%v waiting %q, want held, waiting for approval", d.Job.Held, d.Tasks[0].Waiting)
	}
	if _, err := g.Client(1).Approve(ctx, held, "maintainer"); err != nil {
		t.Fatal(err)
	}
	g.startedRoot(t, ctx, held)

	// A newer push to the same pull request supersedes the running job.
	newer := githubtest.PullRequest("synchronize", "octo", "fw", 9, sha, "feature", true)
	_, next := g.deliver(t, 0, "pull_request", "f-2", newer, g.secret)
	d := g.WaitJob(0, held, 30*time.Second)
	if d.Job.Status != raftfsm.StatusError || d.Job.Reason != raftfsm.ReasonSuperseded || d.Job.Successor != next {
		t.Errorf("older job: got %s %q by %q, want error superseded by %s", d.Job.Status, d.Job.Reason, d.Job.Successor, next)
	}
}

func decodeJSON(r interface{ Read([]byte) (int, error) }, v any) error {
	return json.NewDecoder(r).Decode(v)
}
