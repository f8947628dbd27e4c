package node_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// call makes one request with tok as bearer (basic: as the HTTP Basic
// password, as a browser sends it) and returns the status and body.
func call(t *testing.T, method, u, tok string, basic bool, body []byte) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case tok == "":
	case basic:
		req.SetBasicAuth("browser", tok)
	default:
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp.StatusCode, string(b)
}

// apiCase is one request and the status it must get.
type apiCase struct {
	name, method, path string
	body               string
	basic              bool // the token as a browser's password
	want               int
	contains           string // the body must contain this (the rule or the content)
}

func runCases(t *testing.T, base, tok string, cases []apiCase) {
	t.Helper()
	for _, c := range cases {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		code, got := call(t, c.method, base+c.path, tok, c.basic, body)
		if code != c.want || !strings.Contains(got, c.contains) {
			t.Errorf("%s: %s %s: got %d %q, want %d containing %q", c.name, c.method, c.path, code, got, c.want, c.contains)
		}
	}
}

// TestBlobURLCapability: BLOB_URL carries a capability, not the task's
// token. It reads the job's blobs, by name or by hash, through the BLOB_URL
// route only; as a bearer token it reads and runs nothing (a leaked
// BLOB_URL cannot spawn); another job's blob is not found; and it dies
// with the attempt.
func TestBlobURLCapability(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	c := m.Client(0)
	root := spawn(t, c, "t", "root")
	proc, at := procOf(t, fakes, root.Task)
	waitTask(t, c, root.Job, root.Task, "running")
	tok, blobURL := specEnv(proc.Spec, "OURCI_TOKEN"), specEnv(proc.Spec, "BLOB_URL")
	base := m.Nodes[at].URL()
	capability, ok := strings.CutPrefix(blobURL, base+"/v1/blob/")
	if !ok || !strings.HasPrefix(capability, "ourci-b1."+root.Job+"."+root.Task+".1.") {
		t.Fatalf("BLOB_URL: got %q, want %s/v1/blob/ourci-b1.%s.%s.1.MAC", blobURL, base, root.Job, root.Task)
	}
	if strings.Contains(blobURL, tok) {
		t.Fatalf("BLOB_URL %q carries the task's token", blobURL)
	}

	tc := api.NewClient(base, tok)
	own, err := tc.PutBlob(ctx, strings.NewReader("firmware\n"), url.Values{"name": {"fw.bin"}})
	if err != nil {
		t.Fatalf("the task puts a blob: %v", err)
	}
	other := spawn(t, c, "t", "other")
	foreign, err := c.PutBlob(ctx, strings.NewReader("another job's secret\n"), url.Values{"name": {"fw.bin"}, "job": {other.Job}})
	if err != nil {
		t.Fatalf("put another job's blob: %v", err)
	}
	loose, err := c.PutBlob(ctx, strings.NewReader("in no job\n"), nil)
	if err != nil {
		t.Fatalf("put a blob outside any job: %v", err)
	}

	runCases(t, base, capability, []apiCase{
		{name: "spawn", method: "POST", path: "/v1/spawn", body: `{"topic":"t","args":["id"]}`, want: 403, contains: "BLOB_URL capability only reads"},
		{name: "status", method: "GET", path: "/v1/status", want: 403, contains: "BLOB_URL capability"},
		{name: "own job", method: "GET", path: "/v1/jobs/" + root.Job, want: 403, contains: "BLOB_URL capability"},
		{name: "own log", method: "GET", path: "/v1/tasks/" + root.Task + "/log", want: 403, contains: "BLOB_URL capability"},
		{name: "own log's sections", method: "GET", path: "/v1/tasks/" + root.Task + "/log/sections", want: 403, contains: "BLOB_URL capability"},
		{name: "blob as a bearer", method: "GET", path: "/v1/blobs/fw.bin", want: 403, contains: "BLOB_URL capability"},
		{name: "blob put", method: "PUT", path: "/v1/blobs?name=x", body: "x", want: 403, contains: "BLOB_URL capability"},
		{name: "cancel", method: "POST", path: "/v1/jobs/" + root.Job + "/cancel", want: 403, contains: "BLOB_URL capability"},
		{name: "metrics", method: "GET", path: "/metrics", want: 403, contains: "metrics token"},
		{name: "web UI", method: "GET", path: "/jobs/" + root.Job, basic: true, want: 401, contains: "opens no page"},
	})
	// Through the BLOB_URL route, as the seed's scripts use it.
	runCases(t, blobURL, "", []apiCase{
		{name: "curl BLOB_URL/NAME", method: "GET", path: "/fw.bin", want: 200, contains: "firmware"},
		{name: "curl BLOB_URL/HASH of its job", method: "GET", path: "/" + own.Ref, want: 200, contains: "firmware"},
		{name: "HEAD BLOB_URL/NAME", method: "HEAD", path: "/fw.bin", want: 200},
		{name: "another job's blob by hash", method: "GET", path: "/" + foreign.Ref, want: 404, contains: "refers to no blob"},
		{name: "a blob of no job by hash", method: "GET", path: "/" + loose.Ref, want: 404, contains: "refers to no blob"},
		{name: "another job's name", method: "GET", path: "/fw.bin?job=" + other.Job, want: 200, contains: "firmware"}, // ?job= is ignored: its own job's fw.bin
	})
	forged := capability[:len(capability)-4] + "beef"
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"the task token in the path", tok, 403},
		{"the cluster token in the path", m.Secret.ClusterToken(), 403},
		{"a forged capability", forged, 401},
		{"the capability moved to another job", strings.Replace(capability, root.Job, other.Job, 1), 401},
		{"a capability naming another job", m.Secret.BlobToken(other.Job, root.Task, 1), 401},
	} {
		if code, body := call(t, "GET", base+"/v1/blob/"+tt.token+"/fw.bin", "", false, nil); code != tt.want {
			t.Errorf("%s: got %d %q, want %d", tt.name, code, body, tt.want)
		}
	}

	proc.Finish(0)
	m.WaitJob(0, root.Job, waitLong)
	m.WaitFor(waitLong, "node "+m.Nodes[at].Name()+"'s replica to close the job", func() (bool, string) {
		d, err := m.Client(at).Job(ctx, root.Job, 0, 0)
		return err == nil && d.Job.State == raftfsm.JobClosed, "not closed yet"
	})
	if code, body := call(t, "GET", blobURL+"/fw.bin", "", false, nil); code != http.StatusConflict && code != http.StatusUnauthorized {
		t.Errorf("BLOB_URL after the attempt ended: got %d %q, want 409 or 401", code, body)
	}
}

// TestTaskSeesOnlyItsJob: a task token reads its own job and nothing of
// another's: not in the status (repository, commit, branch, waiting
// tasks), not its detail, log or log stream (also relayed through another
// node), not its blobs by hash, not its pages in the web UI.
func TestTaskSeesOnlyItsJob(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics, c.Slots = topics("t"), 1 })
	ctx := testCtx(t)
	c := m.Client(0)
	root := spawn(t, c, "t", "root")
	proc, at := procOf(t, fakes, root.Task)
	waitTask(t, c, root.Job, root.Task, "running")
	tok := specEnv(proc.Spec, "OURCI_TOKEN")
	filler := spawn(t, c, "t", "filler") // takes the other node's slot: the next job waits
	procOf(t, fakes, filler.Task)
	src := raftfsm.Source{Repo: "https://git.example.com/secret-project.git", SHA: "0123456789abcdef0123456789abcdef01234567", Branch: "feature/confidential"}
	other, err := c.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"x"}, Source: src, Key: key()})
	if err != nil {
		t.Fatalf("spawn another job: %v", err)
	}
	foreign, err := c.PutBlob(ctx, strings.NewReader("another job's artifact\n"), url.Values{"name": {"fw.bin"}, "job": {other.Job}})
	if err != nil {
		t.Fatalf("put another job's blob: %v", err)
	}
	own, err := api.NewClient(m.Nodes[at].URL(), tok).PutBlob(ctx, strings.NewReader("own artifact\n"), url.Values{"name": {"own.bin"}})
	if err != nil {
		t.Fatalf("the task puts a blob: %v", err)
	}
	// Ask the other node, once its replica holds both jobs and blobs: a
	// log request there is relayed to the node that ran the task.
	ask := 1 - at
	m.WaitFor(waitLong, "the other node's replica to hold both jobs and the blobs", func() (bool, string) {
		ok := false
		m.Nodes[ask].FSM().Read(func(s *raftfsm.State, _ uint64) {
			ok = s.Jobs[other.Job] != nil && s.Blobs[strings.TrimPrefix(own.Ref, "sha256:")] != nil && s.Blobs[strings.TrimPrefix(foreign.Ref, "sha256:")] != nil
		})
		return ok, "not yet"
	})
	base := m.Nodes[ask].URL()

	code, body := call(t, "GET", base+"/v1/status", tok, false, nil)
	if code != 200 || !strings.Contains(body, root.Job) || !strings.Contains(body, `"topics"`) {
		t.Errorf("status with a task token: got %d %s, want 200 with its own job and the topics", code, body)
	}
	for _, leak := range []string{other.Job, other.Task, filler.Job, src.Repo, src.SHA, src.Branch} {
		if strings.Contains(body, leak) {
			t.Errorf("status with a task token shows %q of another job:\n%s", leak, body)
		}
	}
	read, _ := m.Secret.OperatorToken(node.RoleRead, time.Time{})
	if code, body := call(t, "GET", base+"/v1/status", read, false, nil); code != 200 || !strings.Contains(body, src.Repo) || !strings.Contains(body, other.Task) {
		t.Errorf("status with a read token: got %d, want 200 with every job and waiting task:\n%s", code, body)
	}

	const rule = "may read only its own job"
	runCases(t, base, tok, []apiCase{
		{name: "own job", method: "GET", path: "/v1/jobs/" + root.Job, want: 200, contains: root.Task},
		{name: "another job", method: "GET", path: "/v1/jobs/" + other.Job, want: 403, contains: rule},
		{name: "another job, blocking", method: "GET", path: "/v1/jobs/" + other.Job + "?index=1&wait=1s", want: 403, contains: rule},
		{name: "another job's log", method: "GET", path: "/v1/tasks/" + other.Task + "/log", want: 403, contains: rule},
		{name: "another job's log, followed", method: "GET", path: "/v1/tasks/" + other.Task + "/log?follow=1", want: 403, contains: rule},
		{name: "own log, relayed", method: "GET", path: "/v1/tasks/" + root.Task + "/log", want: 200},
		{name: "another job's log sections", method: "GET", path: "/v1/tasks/" + other.Task + "/log/sections", want: 403, contains: rule},
		{name: "own log sections, still running", method: "GET", path: "/v1/tasks/" + root.Task + "/log/sections", want: 409, contains: "available once the attempt ends"},
		{name: "own blob by name", method: "GET", path: "/v1/blobs/own.bin", want: 200, contains: "own artifact"},
		{name: "own blob by hash", method: "GET", path: "/v1/blobs/" + own.Ref, want: 200, contains: "own artifact"},
		{name: "another job's blob by hash", method: "GET", path: "/v1/blobs/" + foreign.Ref, want: 404, contains: "refers to no blob"},
		{name: "another job's blob by name", method: "GET", path: "/v1/blobs/fw.bin?job=" + other.Job, want: 403, contains: "only in its own job"},
		{name: "another job's blob, HEAD", method: "HEAD", path: "/v1/blobs/" + foreign.Ref, want: 404},
		{name: "UI: jobs list", method: "GET", path: "/", basic: true, want: 200, contains: root.Job},
		{name: "UI: another job", method: "GET", path: "/jobs/" + other.Job, basic: true, want: 403, contains: "sees only its own job"},
		{name: "UI: another job's task", method: "GET", path: "/tasks/" + other.Task, basic: true, want: 403, contains: "sees only its own job"},
		{name: "UI: another job's log", method: "GET", path: "/tasks/" + other.Task + "/log", basic: true, want: 403, contains: "sees only its own job"},
		{name: "UI: another job's blob", method: "GET", path: "/jobs/" + other.Job + "/blobs/fw.bin", basic: true, want: 403, contains: "sees only its own job"},
		{name: "UI: another job's blob by hash under its own job", method: "GET", path: "/jobs/" + root.Job + "/blobs/" + foreign.Ref, basic: true, want: 404},
		{name: "UI: own blob", method: "GET", path: "/jobs/" + root.Job + "/blobs/own.bin", basic: true, want: 200, contains: "own artifact"},
	})
	if _, body := call(t, "GET", base+"/", tok, true, nil); strings.Contains(body, other.Job) {
		t.Errorf("UI jobs list with a task token shows another job:\n%s", body)
	}
	// An operator still reads anything by hash.
	if code, body := call(t, "GET", base+"/v1/blobs/"+foreign.Ref, read, false, nil); code != 200 {
		t.Errorf("another job's blob by hash with a read token: got %d %q, want 200", code, body)
	}
	if _, err := c.Cancel(ctx, other.Job); err != nil { // its repository does not exist
		t.Fatalf("cancel the other job: %v", err)
	}
	proc.Finish(0)
	m.WaitJob(0, root.Job, waitLong)
}

// TestMetricsTokenScrapesOnly: a metrics token scrapes /metrics and does
// nothing else; a read token does not scrape.
func TestMetricsTokenScrapesOnly(t *testing.T) {
	m, fakes := startFakes(t, 1, func(i int, c *node.Config) { c.Topics = topics("t") })
	r := spawn(t, m.Client(0), "t", "root")
	proc, _ := procOf(t, fakes, r.Task)
	metrics, err := m.Secret.OperatorToken(node.RoleMetrics, time.Time{})
	if err != nil {
		t.Fatalf("make a metrics token: %v", err)
	}
	read, _ := m.Secret.OperatorToken(node.RoleRead, time.Time{})
	base := m.Nodes[0].URL()
	const rule = "only scrapes /metrics"
	runCases(t, base, metrics, []apiCase{
		{name: "scrape", method: "GET", path: "/metrics", want: 200, contains: "ourci_node_info"},
		{name: "status", method: "GET", path: "/v1/status", want: 403, contains: rule},
		{name: "job", method: "GET", path: "/v1/jobs/" + r.Job, want: 403, contains: rule},
		{name: "log", method: "GET", path: "/v1/tasks/" + r.Task + "/log", want: 403, contains: rule},
		{name: "log sections", method: "GET", path: "/v1/tasks/" + r.Task + "/log/sections", want: 403, contains: rule},
		{name: "spawn", method: "POST", path: "/v1/spawn", body: `{"topic":"t","args":["id"]}`, want: 403, contains: rule},
		{name: "cancel", method: "POST", path: "/v1/jobs/" + r.Job + "/cancel", want: 403, contains: rule},
		{name: "blob put", method: "PUT", path: "/v1/blobs?job=" + r.Job, body: "x", want: 403, contains: rule},
		{name: "blob get", method: "GET", path: "/v1/blobs/x?job=" + r.Job, want: 403, contains: rule},
		{name: "ledger", method: "GET", path: "/v1/ledger", want: 403, contains: rule},
		{name: "drain", method: "POST", path: "/v1/drain", want: 403, contains: rule},
		{name: "snapshot", method: "GET", path: "/v1/operator/snapshot", want: 403, contains: rule},
		{name: "web UI", method: "GET", path: "/", basic: true, want: 401, contains: "opens no page"},
		{name: "BLOB_URL route", method: "GET", path: "/v1/blob/" + metrics + "/x", want: 403, contains: "blob capability"},
	})
	runCases(t, base, read, []apiCase{
		{name: "a read token scrapes", method: "GET", path: "/metrics", want: 403, contains: "needs a metrics token"},
	})
	runCases(t, base, m.Secret.ClusterToken(), []apiCase{
		{name: "the cluster token scrapes", method: "GET", path: "/metrics", want: 200, contains: "ourci_node_info"},
	})
	proc.Finish(0)
	m.WaitJob(0, r.Job, waitLong)
}
