package e2e

// TestGitHubOnRealNodes: the GitHub flow of issue 5 on three real
// ourci-node processes. The test process runs the stand-ins
// (githubtest.Server for GitHub's REST API, githubtest.SMTPServer for mail)
// and a local bare repository REPOS/octo/fw.git whose ci.sh is the root
// task (host executor, topic "ci"). Each pull request gets its own commit,
// whose file "mode" tells ci.sh what to spawn:
//
//   - fail: a child that exits 1 at once, and a sibling that waits for
//     RELEASE/fail to exist, then exits 0;
//   - pass: two children that exit 0;
//   - slow: three children that wait for RELEASE/slow (the leader is killed
//     while they wait; with three nodes, one of them likely runs on it).
//
// The waiting children give up after about three minutes, and a cleanup
// creates every release file, so no task outlives the test for long, even
// one orphaned by the killed leader.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/github/githubtest"
)

const (
	gheOwner     = "octo"
	gheRepo      = "fw"
	gheTopic     = "ci"
	gheToken     = "ghs_e2eTokenThatMustNotLeak0123456789"
	gheSecret    = "It's a Secret to Everybody"
	ghePublicURL = "https://ci.example.com"
	gheAuthor    = "alice@example.com"
)

// gheCIScript is the repository's ci.sh (the root task: sh ci.sh).
const gheCIScript = `# ci.sh: the root task of TestGitHubOnRealNodes's jobs. The file "mode"
# says what to spawn; "release-dir" names where the test creates release files.
set -eu
mode=$(cat mode)
rel=$(cat release-dir)
waiter='i=0; while [ ! -e "$1" ]; do i=$((i+1)); if [ $i -gt 1800 ]; then echo "gave up waiting for $1"; exit 3; fi; sleep 0.1; done; echo "released by $1"'
echo "ci.sh: mode $mode on branch ${OURCI_BRANCH:-} at ${OURCI_SHA:-}"
case $mode in
fail)
	ourci-node spawn -t ci -- sh -c "$waiter" e2e-wait "$rel/fail"
	ourci-node spawn -t ci -- sh -c 'echo e2e-fail: failing at once; exit 1'
	;;
pass)
	ourci-node spawn -t ci -- sh -c 'echo e2e-pass one'
	ourci-node spawn -t ci -- sh -c 'echo e2e-pass two'
	;;
slow)
	for n in 1 2 3; do
		ourci-node spawn -t ci -- sh -c "$waiter" e2e-wait "$rel/slow"
	done
	;;
*)
	echo "unknown mode $mode"; exit 2
	;;
esac
`

// gheJob is the part of `status --json JOB` this test reads.
type gheJob struct {
	SchemaVersion int `json:"schema_version"`
	Job           struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Status string `json:"status"`
		Reason string `json:"reason"`
		GitHub *struct {
			Owner    string `json:"owner"`
			Name     string `json:"name"`
			Delivery string `json:"delivery"`
			Reported string `json:"reported"`
			Notified string `json:"notified"`
		} `json:"github"`
	} `json:"job"`
	Tasks []gheTask `json:"tasks"`
}

type gheTask struct {
	ID         string    `json:"id"`
	Args       []string  `json:"args"`
	State      string    `json:"state"`
	Node       string    `json:"node"`
	Attempt    int       `json:"attempt"`
	ExitCode   *int      `json:"exit_code"`
	FinishedAt time.Time `json:"finished_at"`
}

func (j gheJob) reported() string {
	if j.Job.GitHub == nil {
		return "<no github record>"
	}
	return j.Job.GitHub.Reported
}

func (j gheJob) String() string {
	b, _ := json.Marshal(j)
	return string(b)
}

// task returns the task whose args contain mark (the first one).
func (j gheJob) task(mark string) (gheTask, bool) {
	for _, tv := range j.Tasks {
		if strings.Contains(strings.Join(tv.Args, " "), mark) {
			return tv, true
		}
	}
	return gheTask{}, false
}

// gheWaiters is the job's waiting children in state ("": any).
func gheWaiters(j gheJob, state string) []gheTask {
	var out []gheTask
	for _, tv := range j.Tasks {
		if strings.Contains(strings.Join(tv.Args, " "), "e2e-wait") && (state == "" || tv.State == state) {
			out = append(out, tv)
		}
	}
	return out
}

// gheStatusClock notes when each status posted to the stand-in was first
// seen (polled every 5ms), for the timings.
type gheStatusClock struct {
	mu   sync.Mutex
	seen []time.Time
}

func gheWatchStatuses(t *testing.T, api *githubtest.Server) *gheStatusClock {
	c := &gheStatusClock{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			n := len(api.AllStatuses())
			c.mu.Lock()
			for len(c.seen) < n {
				c.seen = append(c.seen, time.Now())
			}
			c.mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return c
}

// arrival is when the first status with state for sha was seen.
func (c *gheStatusClock) arrival(api *githubtest.Server, sha, state string) time.Time {
	for i, st := range api.AllStatuses() {
		if strings.EqualFold(st.SHA, sha) && st.State == state {
			c.mu.Lock()
			defer c.mu.Unlock()
			if i < len(c.seen) {
				return c.seen[i]
			}
			return time.Now()
		}
	}
	return time.Time{}
}

// gheStates is the states posted for sha, in order.
func gheStates(api *githubtest.Server, sha string) []string {
	var out []string
	for _, st := range api.Statuses(gheOwner, gheRepo, sha) {
		out = append(out, st.State)
	}
	return out
}

// gheMakeRepo makes REPOS/octo/fw.git: main with ci.sh and release-dir, and
// one branch per mode with its "mode" file. It returns each mode's SHA.
func gheMakeRepo(t *testing.T, repos, release string, modes []string) map[string]string {
	t.Helper()
	bare := filepath.Join(repos, gheOwner, gheRepo+".git")
	work := filepath.Join(t.TempDir(), "work")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Alice", "-c", "user.email=" + gheAuthor}, args...)...)
		cmd.Env = append(cleanEnv(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Dir(bare), work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	git(filepath.Dir(bare), "init", "-q", "--bare", bare)
	git(work, "init", "-q", "-b", "main")
	write("ci.sh", gheCIScript)
	write("release-dir", release+"\n")
	git(work, "add", ".")
	git(work, "commit", "-qm", "ci")
	git(work, "push", "-q", bare, "main")
	shas := map[string]string{}
	for _, mode := range modes {
		git(work, "checkout", "-q", "-b", mode, "main")
		write("mode", mode+"\n")
		git(work, "add", "mode")
		git(work, "commit", "-qm", mode)
		git(work, "push", "-q", bare, mode)
		shas[mode] = git(work, "rev-parse", "HEAD")
	}
	return shas
}

// gheStartMesh is startMesh with extra join flags for every node.
func gheStartMesh(t *testing.T, specs []nodeSpec, extra []string) *mesh {
	t.Helper()
	for i := range specs {
		specs[i].Flags = append(specs[i].Flags, extra...)
	}
	return startMesh(t, specs)
}

// gheDeliver posts a webhook as GitHub would and returns the answer's code,
// the job it names (if any) and how long the answer took.
func gheDeliver(t *testing.T, url string, secret []byte, kind, delivery string, body []byte) (int, string, time.Duration) {
	t.Helper()
	req, err := githubtest.NewWebhookRequest(url+"/webhook/github", secret, kind, delivery, body)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 15 * time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/webhook/github (%s %s): %v", url, kind, delivery, err)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Job string `json:"job"`
	}
	json.Unmarshal(raw, &out)
	t.Logf("webhook %s %s to %s: %d in %v: %s", kind, delivery, url, resp.StatusCode, took.Round(time.Millisecond), strings.TrimSpace(string(raw)))
	return resp.StatusCode, out.Job, took
}

// gheJobCount is how many jobs node i's status lists.
func gheJobCount(t *testing.T, m *mesh, i int) int {
	t.Helper()
	r := m.runOn(t, i, "status", "--json")
	var st struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status --json on %s: %v", m.nodes[i].spec.Name, r)
	}
	return len(st.Jobs)
}

// gheWaitStatus waits for state at the stand-in, failing the test at the deadline.
func gheWaitStatus(t *testing.T, api *githubtest.Server, sha, state string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := api.WaitStatus(ctx, gheOwner, gheRepo, sha, state); err != nil {
		t.Fatalf("commit status %s for %s: %v", state, sha, err)
	}
}

// gheCompact drops repeats: [pending pending failure] → [pending failure].
func gheCompact(states []string) []string { return slices.Compact(slices.Clone(states)) }

// TestGitHubOnRealNodes: webhooks posted to a follower open jobs (a forged
// or missing signature gets 401 and opens none; a replayed delivery opens
// one job); the stand-in sees pending then failure while the failing job
// still runs a sibling, and nothing after; pending then success for the
// passing one; the failure mail goes to the head commit's author with the
// job's link; after the leader is SIGKILLed mid-job the final status still
// arrives and github.reported in the ledger equals it. It logs the timings
// webhook→pending, first failure→failure status, leader kill→final status.
func TestGitHubOnRealNodes(t *testing.T) {
	t.Parallel()
	began := time.Now()
	dir := t.TempDir()
	repos, release := filepath.Join(dir, "repos"), filepath.Join(dir, "release")
	if err := os.MkdirAll(release, 0o755); err != nil {
		t.Fatal(err)
	}
	releaseFile := func(mode string) {
		if err := os.WriteFile(filepath.Join(release, mode), nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	shas := gheMakeRepo(t, repos, release, []string{"fail", "pass", "slow"})

	api, smtp := githubtest.New(), githubtest.NewSMTP()
	t.Cleanup(api.Close) // cleanups run last-registered first: after the nodes stopped
	t.Cleanup(smtp.Close)
	api.RequireToken(gheToken)
	for _, sha := range shas {
		api.SetAuthorEmail(sha, gheAuthor)
	}
	secretFile, tokenFile := filepath.Join(dir, "webhook-secret"), filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte(gheSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(gheToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var specs []nodeSpec
	for i := 1; i <= 3; i++ {
		specs = append(specs, nodeSpec{Name: fmt.Sprintf("node%d", i), Topics: []string{gheTopic}})
	}
	m := gheStartMesh(t, specs, []string{
		"--github-secret-file", secretFile, "--github-token-file", tokenFile,
		"--github-api-url", api.URL(), "--github-clone-url", filepath.Join(repos, "{owner}", "{repo}.git"),
		"--github-topic", gheTopic, "--github-command", "sh ci.sh",
		"--smtp-addr", smtp.Addr(), "--smtp-from", "ourci@example.com", "--public-url", ghePublicURL,
	})
	// Registered after the mesh: runs before the nodes stop, so that waiting
	// tasks (an orphan of the killed leader too) exit.
	t.Cleanup(func() {
		for _, mode := range []string{"fail", "slow"} {
			os.WriteFile(filepath.Join(release, mode), nil, 0o644)
		}
	})
	clock := gheWatchStatuses(t, api)
	t.Logf("mesh of 3 up in %v", time.Since(began).Round(time.Millisecond))

	st, err := m.meshStatus(t, 0)
	if err != nil {
		t.Fatal(err)
	}
	leader, follower, other := -1, -1, -1
	for i, n := range m.nodes {
		switch {
		case n.spec.Name == st.Leader:
			leader = i
		case follower < 0:
			follower = i
		default:
			other = i
		}
	}
	if leader < 0 {
		t.Fatalf("leader %q is none of the nodes", st.Leader)
	}
	t.Logf("leader %s; webhooks go to the follower %s", st.Leader, m.nodes[follower].spec.Name)
	secret := []byte(gheSecret)
	const long = 60 * time.Second

	// (4a) A forged signature, and none at all: 401, no job, nothing sent to GitHub.
	failBody := githubtest.PullRequest("opened", gheOwner, gheRepo, 1, shas["fail"], "fail", false)
	if code, job, _ := gheDeliver(t, m.nodes[follower].url, []byte("not the secret"), "pull_request", githubtest.NewDelivery(), failBody); code != http.StatusUnauthorized || job != "" {
		t.Errorf("forged signature: got %d job %q, want 401 and no job", code, job)
	}
	if code, job, _ := gheDeliver(t, m.nodes[leader].url, nil, "pull_request", githubtest.NewDelivery(), failBody); code != http.StatusUnauthorized || job != "" {
		t.Errorf("no signature: got %d job %q, want 401 and no job", code, job)
	}
	if n := gheJobCount(t, m, leader); n != 0 {
		t.Errorf("after forged deliveries: %d jobs, want 0", n)
	}

	// (1), (2) The failing pull request, through a follower.
	sent := time.Now()
	code, failJob, took := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", githubtest.NewDelivery(), failBody)
	if code != http.StatusCreated || failJob == "" {
		t.Fatalf("pull_request #1 to a follower: got %d job %q, want 201 and a job", code, failJob)
	}
	if took > 2*time.Second {
		t.Errorf("the webhook answered in %v, want within 2s", took)
	}
	gheWaitStatus(t, api, shas["fail"], "pending", long)
	pendingAfter := clock.arrival(api, shas["fail"], "pending").Sub(sent)
	gheWaitStatus(t, api, shas["fail"], "failure", long)
	failureSeen := clock.arrival(api, shas["fail"], "failure")
	v, err := jobStatusAs[gheJob](t, m, follower, failJob)
	if err != nil {
		t.Fatal(err)
	}
	if v.Job.State != "open" {
		t.Errorf("when the failure status arrived: job %s, want open (a sibling still waits)", v.Job.State)
	}
	failed, ok := v.task("e2e-fail")
	if !ok || failed.State != "failed" || failed.ExitCode == nil || *failed.ExitCode != 1 || failed.FinishedAt.IsZero() {
		t.Fatalf("the failing child: got %+v (ok %v), want failed with exit 1; job %v", failed, ok, v)
	}
	firstFailToStatus := failureSeen.Sub(failed.FinishedAt)
	v = waitJobAs[gheJob](t, m, follower, failJob, 30*time.Second, "the waiting sibling to run", func(v gheJob) bool {
		w, ok := v.task("e2e-wait")
		return v.Job.State != "open" || ok && w.State == "running"
	})
	if v.Job.State != "open" {
		t.Fatalf("the failing job closed before its waiting sibling was released: %v", v)
	}
	w, _ := v.task("e2e-wait")
	t.Logf("failing PR: job %s open with the sibling %s running on %s; statuses so far %v", failJob, w.ID, w.Node, gheStates(api, shas["fail"]))
	for _, s := range api.Statuses(gheOwner, gheRepo, shas["fail"]) {
		if s.Context != "ourci" || s.TargetURL != ghePublicURL+"/jobs/"+failJob || s.Authorization != "token "+gheToken {
			t.Errorf("status %+v: want context ourci, target %s/jobs/%s and the token", s, ghePublicURL, failJob)
		}
	}
	// (6) The failure mail, to the head commit's author, with the job's link.
	mctx, mcancel := context.WithTimeout(context.Background(), long)
	msg, err := smtp.WaitMessage(mctx)
	mcancel()
	if err != nil {
		t.Errorf("failure mail: %v", err)
	} else if len(msg.To) != 1 || msg.To[0] != gheAuthor || msg.From != "ourci@example.com" ||
		!strings.Contains(string(msg.Data), ghePublicURL+"/jobs/"+failJob) {
		t.Errorf("failure mail: from %q to %v:\n%s\nwant from ourci@example.com to %s with %s/jobs/%s", msg.From, msg.To, msg.Data, gheAuthor, ghePublicURL, failJob)
	}
	releaseFile("fail")
	v = waitJobAs[gheJob](t, m, follower, failJob, long, "the failing job to close", func(v gheJob) bool { return v.Job.State == "closed" })
	if v.Job.Status != "failed" {
		t.Errorf("failing PR's job: got status %q, want failed: %v", v.Job.Status, v)
	}
	if w, _ := v.task("e2e-wait"); w.State != "passed" {
		t.Errorf("the released sibling: got %s, want passed (it still reports into the failed job)", w.State)
	}
	v = waitJobAs[gheJob](t, m, leader, failJob, 30*time.Second, "the ledger to record the failure status and mail", func(v gheJob) bool {
		return v.Job.GitHub != nil && v.Job.GitHub.Reported == "failure" && v.Job.GitHub.Notified == "failed"
	})
	if got := gheCompact(gheStates(api, shas["fail"])); !slices.Equal(got, []string{"pending", "failure"}) {
		t.Errorf("failing PR's statuses: got %v, want pending then failure", gheStates(api, shas["fail"]))
	}

	// (3), (4b) The passing pull request; its delivery replayed to two other nodes.
	passBody := githubtest.PullRequest("opened", gheOwner, gheRepo, 2, shas["pass"], "pass", false)
	delivery := githubtest.NewDelivery()
	code, passJob, _ := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", delivery, passBody)
	if code != http.StatusCreated || passJob == "" {
		t.Fatalf("pull_request #2: got %d job %q, want 201 and a job", code, passJob)
	}
	for _, i := range []int{other, leader, follower} {
		if code, again, _ := gheDeliver(t, m.nodes[i].url, secret, "pull_request", delivery, passBody); code >= 300 || again != passJob {
			t.Errorf("delivery %s replayed to %s: got %d job %q, want the same job %s", delivery, m.nodes[i].spec.Name, code, again, passJob)
		}
	}
	if n := gheJobCount(t, m, leader); n != 2 {
		t.Errorf("after a delivery sent four times: %d jobs, want 2", n)
	}
	gheWaitStatus(t, api, shas["pass"], "success", long)
	v = waitJobAs[gheJob](t, m, follower, passJob, long, "the passing job to close with success recorded", func(v gheJob) bool {
		return v.Job.State == "closed" && v.reported() == "success"
	})
	if v.Job.Status != "passed" || len(v.Tasks) != 3 {
		t.Errorf("passing PR's job: got %s with %d tasks, want passed with 3: %v", v.Job.Status, len(v.Tasks), v)
	}
	if got := gheCompact(gheStates(api, shas["pass"])); !slices.Equal(got, []string{"pending", "success"}) {
		t.Errorf("passing PR's statuses: got %v, want pending then success", gheStates(api, shas["pass"]))
	}

	// (5) A third pull request; the leader is killed while its task waits.
	slowBody := githubtest.PullRequest("opened", gheOwner, gheRepo, 3, shas["slow"], "slow", false)
	code, slowJob, _ := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", githubtest.NewDelivery(), slowBody)
	if code != http.StatusCreated || slowJob == "" {
		t.Fatalf("pull_request #3: got %d job %q, want 201 and a job", code, slowJob)
	}
	v = waitJobAs[gheJob](t, m, follower, slowJob, long, "the slow job's three waiters to run with pending recorded", func(v gheJob) bool {
		root, ok := v.task("ci.sh")
		return ok && root.State == "passed" && len(gheWaiters(v, "running")) == 3 && v.reported() == "pending"
	})
	var where []string
	for _, w := range gheWaiters(v, "") {
		where = append(where, w.Node)
	}
	killed := time.Now()
	m.nodes[leader].cmd.Process.Kill()
	<-m.nodes[leader].exited
	releaseFile("slow")
	t.Logf("SIGKILLed the leader %s while the slow job's waiters ran on %v; released them", m.nodes[leader].spec.Name, where)
	gheWaitStatus(t, api, shas["slow"], "success", 90*time.Second)
	killToFinal := clock.arrival(api, shas["slow"], "success").Sub(killed)
	v = waitJobAs[gheJob](t, m, follower, slowJob, long, "the ledger to record what GitHub last received", func(v gheJob) bool {
		sts := gheStates(api, shas["slow"])
		return v.Job.State == "closed" && len(sts) > 0 && v.reported() == sts[len(sts)-1]
	})
	if v.Job.Status != "passed" || v.reported() != "success" {
		t.Errorf("slow PR's job after the leader's death: got %s, github.reported %q; want passed, success: %v", v.Job.Status, v.reported(), v)
	}
	if got := gheCompact(gheStates(api, shas["slow"])); !slices.Equal(got, []string{"pending", "success"}) {
		t.Errorf("slow PR's statuses: got %v, want pending then success", gheStates(api, shas["slow"]))
	}
	where = where[:0]
	for _, w := range gheWaiters(v, "") {
		where = append(where, fmt.Sprintf("%s %s attempt %d", w.State, w.Node, w.Attempt))
	}
	t.Logf("slow PR: the waiters ended %v", where)
	if st, err := m.meshStatus(t, follower); err == nil {
		t.Logf("leader after the kill: %s", st.Leader)
	}

	// Nothing more about the failing PR; one mail in all; nothing refused.
	if got := gheStates(api, shas["fail"]); !slices.Equal(gheCompact(got), []string{"pending", "failure"}) {
		t.Errorf("failing PR's statuses at the end: got %v, want pending then failure and nothing after", got)
	}
	if msgs := smtp.Messages(); len(msgs) != 1 {
		t.Errorf("mails: got %d, want 1 (the failure)", len(msgs))
	}
	for _, r := range api.Requests() {
		if r.Code >= 300 {
			t.Errorf("the GitHub stand-in answered %s %s with %d", r.Method, r.Path, r.Code)
		}
	}
	for _, n := range m.nodes {
		if b, err := os.ReadFile(n.logPath); err == nil && strings.Contains(string(b), gheToken) {
			t.Errorf("%s's log contains the GitHub token", n.spec.Name)
		}
	}
	for _, st := range api.AllStatuses() {
		t.Logf("status %d: %s@%.7s %s %q %s", st.ID, st.Repo, st.SHA, st.State, st.Description, st.TargetURL)
	}
	t.Logf("timings: webhook→pending %v; first failure→failure status %v; leader kill→final status %v; whole test %v",
		pendingAfter.Round(time.Millisecond), firstFailToStatus.Round(time.Millisecond), killToFinal.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
}
