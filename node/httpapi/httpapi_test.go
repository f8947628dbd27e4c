package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/raftfsm"
)

// fakeWriter records what handlers write and answers what the test set.
type fakeWriter struct {
	mu   sync.Mutex
	cmds []raftfsm.Command
	res  raftfsm.Result
	err  error
}

func (w *fakeWriter) Submit(_ context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cmds = append(w.cmds, c)
	return w.res, w.err
}

func (w *fakeWriter) written() []raftfsm.Command {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]raftfsm.Command(nil), w.cmds...)
}

// fakeLead is a node that leads (dispatching) or follows a leader at url.
type fakeLead struct {
	leading bool
	url     string
}

func (l fakeLead) Dispatching() bool                                   { return l.leading }
func (l fakeLead) WaitDispatching(context.Context, time.Duration) bool { return l.leading }
func (l fakeLead) IsLeader() bool                                      { return l.leading }
func (l fakeLead) LeaderURL(context.Context, time.Duration) (string, error) {
	if l.url == "" {
		return "", peer.ErrNoLeader
	}
	return l.url, nil
}
func (l fakeLead) PeerURL() string              { return "https://self.invalid" }
func (l fakeLead) Name() string                 { return "self" }
func (l fakeLead) Transport() http.RoundTripper { return http.DefaultTransport }
func (l fakeLead) Frozen() bool                 { return false }

type fakeJobs struct {
	spawnErr error
	quota    []string
}

func (j *fakeJobs) SpawnCommand(_ context.Context, req api.SpawnRequest, p auth.Principal) (raftfsm.Command, error) {
	if j.spawnErr != nil {
		return raftfsm.Command{}, j.spawnErr
	}
	return raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Topic: req.Topic, Args: req.Args, NewJob: &raftfsm.NewJob{}}}, nil
}
func (j *fakeJobs) ApproveCommand(id, by string) raftfsm.Command {
	return raftfsm.Command{Type: raftfsm.CmdApprove, Approve: &raftfsm.Approve{Job: id, By: by}}
}
func (j *fakeJobs) Job(id string) (api.JobDetail, bool) {
	return api.JobDetail{}, id == "j1"
}
func (j *fakeJobs) Status() api.Status {
	return api.Status{Jobs: []api.JobView{{ID: "j1"}, {ID: "j2"}}, Waiting: []api.Waiting{{Job: "j2"}}}
}
func (j *fakeJobs) QuotaRefused(q string)    { j.quota = append(j.quota, q) }
func (j *fakeJobs) LogChunksAnswered(string) {}

// fakeLogs answers what each log route was asked, as text.
type fakeLogs struct{}

func (fakeLogs) Serve(w http.ResponseWriter, r *http.Request, p auth.Principal, id string, q LogQuery) {
	fmt.Fprintf(w, "log %s %+v", id, q)
}
func (fakeLogs) ServeSections(w http.ResponseWriter, r *http.Request, p auth.Principal, id string, attempt int) {
	fmt.Fprintf(w, "sections %s %d", id, attempt)
}
func (fakeLogs) TakeChunks(w http.ResponseWriter, task string, attempt int, from string, body []byte) {
	fmt.Fprintf(w, "chunks %s %d from %s: %d bytes", task, attempt, from, len(body))
}
func (fakeLogs) ServeCopy(w http.ResponseWriter, r *http.Request, task string, attempt int, q LogQuery) {
	fmt.Fprintf(w, "copy %s %d %+v", task, attempt, q)
}

type fakeReports struct{}

func (fakeReports) ReportCommand(r api.Report) (raftfsm.Command, error) {
	return raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: r.Task, Attempt: r.Attempt, Node: r.Node}}, nil
}

type fakeOperator struct{ removed []string }

func (o *fakeOperator) Name() string { return "self" }
func (o *fakeOperator) RaftPeers() (api.RaftPeers, error) {
	return api.RaftPeers{Peers: []api.RaftPeer{{ID: "n1-a", Name: "n1", Leader: true, Alive: true}, {ID: "n2-a", Name: "n2", Alive: true}, {ID: "n3-a", Name: "n3"}, {ID: "n3-b", Name: "n3"}}}, nil
}
func (o *fakeOperator) ServersNamed(name string) []string { return []string{name + "-a"} }
func (o *fakeOperator) RemoveServer(id string, _ time.Duration) error {
	o.removed = append(o.removed, id)
	return nil
}
func (o *fakeOperator) Drain(context.Context) error { return nil }

type fakeHealth struct{ why string }

func (h *fakeHealth) Name() string      { return "self" }
func (h *fakeHealth) Unhealthy() string { return h.why }
func (h *fakeHealth) Ready() bool       { return true }

type fakeKeyring struct{ keys [][]byte }

func (k *fakeKeyring) Keys() [][]byte { return k.keys }
func (k *fakeKeyring) InstallKey(key []byte) error {
	k.keys = append(k.keys, key)
	return nil
}
func (k *fakeKeyring) UseKey(key []byte) error    { return nil }
func (k *fakeKeyring) RemoveKey(key []byte) error { return errors.New("keyring: not installed") }
func (k *fakeKeyring) Save() error                { return nil }

type fakeSnapshots struct{}

func (fakeSnapshots) Barrier(time.Duration) error      { return errors.New("leadership lost") }
func (fakeSnapshots) Backup() (*raftfsm.Backup, error) { return nil, errors.New("unreachable") }
func (fakeSnapshots) Restore(*raftfsm.State, time.Duration) (uint64, error) {
	return 0, errors.New("unreachable")
}

type harness struct {
	s      *Server
	w      *fakeWriter
	jobs   *fakeJobs
	op     *fakeOperator
	fsm    *raftfsm.FSM
	secret auth.Secret
	index  uint64
}

func newHarness(t *testing.T, lead fakeLead) *harness {
	t.Helper()
	h := &harness{w: &fakeWriter{}, jobs: &fakeJobs{}, op: &fakeOperator{}, fsm: raftfsm.NewFSM(), secret: auth.NewSecret()}
	h.s = &Server{Ledger: h.fsm, Secret: h.secret, Writer: h.w, Lead: lead, Jobs: h.jobs, Reports: fakeReports{}, Operator: h.op,
		Health: &fakeHealth{}, Keyring: &fakeKeyring{}, Snapshots: fakeSnapshots{},
		Metrics:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }),
		Webhooks: &fakeHooks{secret: []byte("hook-secret")}, WebhookBudget: NewWebhookBudget(1 << 20),
		Blobs: newFakeBlobs(), Counters: h.jobs,
		Logs: fakeLogs{}, RegisterUI: func(*http.ServeMux) {},
	}
	return h
}

// apply appends a command to the harness's ledger, as Raft would.
func (h *harness) apply(t *testing.T, c raftfsm.Command) {
	t.Helper()
	b, err := raftfsm.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	h.index++
	if res, _ := h.fsm.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b}).(raftfsm.Result); res.Err != nil {
		t.Fatalf("apply %s: %v", c.Type, res.Err)
	}
}

func (h *harness) do(t *testing.T, peerPort bool, method, path, token string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.s.Routes(peerPort).ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e api.Error
	json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Code
}

// TestAuthAndRoles: who may do what at the edge, before any handler runs.
func TestAuthAndRoles(t *testing.T) {
	h := newHarness(t, fakeLead{leading: true})
	read, _ := h.secret.OperatorToken(auth.RoleRead, time.Time{})
	operate, _ := h.secret.OperatorToken(auth.RoleOperate, time.Time{})
	metrics, _ := h.secret.OperatorToken(auth.RoleMetrics, time.Time{})
	spawn := `{"topic":"t","args":[]}`
	cases := []struct {
		name, method, path, token, body string
		peerPort                        bool
		want                            int
		wantCode                        string
	}{
		{"no token", "GET", "/v1/status", "", "", false, 401, api.CodeUnauthorized},
		{"another mesh's token", "GET", "/v1/status", auth.NewSecret().ClusterToken(), "", false, 401, api.CodeUnauthorized},
		{"a task token of no task", "GET", "/v1/status", h.secret.TaskToken("t9", 1), "", false, 401, api.CodeUnauthorized},
		{"read token reads", "GET", "/v1/status", read, "", false, 200, ""},
		{"metrics token reads no status", "GET", "/v1/status", metrics, "", false, 403, api.CodeForbidden},
		{"read token scrapes no metrics", "GET", "/metrics", read, "", false, 403, api.CodeForbidden},
		{"metrics token scrapes", "GET", "/metrics", metrics, "", false, http.StatusTeapot, ""},
		{"read token cannot spawn", "POST", "/v1/spawn", read, spawn, false, 403, api.CodeForbidden},
		{"operate token spawns", "POST", "/v1/spawn", operate, spawn, false, 200, ""},
		{"read token cannot cancel", "POST", "/v1/jobs/j1/cancel", read, "", false, 403, api.CodeForbidden},
		{"operate token cannot drain", "POST", "/v1/drain", operate, "", false, 403, api.CodeForbidden},
		{"the public port has no internal routes", "POST", "/v1/internal/report", h.secret.ClusterToken(), `{}`, false, 404, ""},
		{"operate token submits nothing", "POST", peer.SubmitPath, operate, "", true, 403, api.CodeForbidden},
		{"read token lists rigs", "GET", "/v1/rigs", read, "", false, 200, ""},
		{"read token cannot quarantine", "POST", "/v1/rigs/n1/hw/quarantine?reason=x", read, "", false, 403, api.CodeForbidden},
		{"a quarantine needs a reason", "POST", "/v1/rigs/n1/hw/quarantine", operate, "", false, 400, api.CodeBadRequest},
		{"operate token quarantines", "POST", "/v1/rigs/n1/hw/quarantine?reason=hub+dead", operate, "", false, 200, ""},
		{"read token cannot release", "POST", "/v1/rigs/n1/hw/release", read, "", false, 403, api.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := h.do(t, c.peerPort, c.method, c.path, c.token, strings.NewReader(c.body))
			if rec.Code != c.want || (c.wantCode != "" && errorCode(t, rec) != c.wantCode) {
				t.Errorf("got %d %s, want %d %s (%s)", rec.Code, errorCode(t, rec), c.want, c.wantCode, rec.Body)
			}
		})
	}
}

// TestTaskTokenSeesItsOwnJob: a live attempt's token reads its own job and
// a status confined to it; once the attempt ended, the token is refused
// (and told why when its job closed).
func TestTaskTokenSeesItsOwnJob(t *testing.T) {
	h := newHarness(t, fakeLead{leading: true})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Job: "j1", Task: "t1", Topic: "x", Args: []string{}, Assign: "n1", NewJob: &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)}}})
	tok := h.secret.TaskToken("t1", 1)
	rec := h.do(t, false, "GET", "/v1/status", tok, nil)
	var st api.Status
	json.Unmarshal(rec.Body.Bytes(), &st)
	if rec.Code != 200 || len(st.Jobs) != 1 || st.Jobs[0].ID != "j1" || len(st.Waiting) != 0 {
		t.Errorf("status: got %d %+v, want only job j1", rec.Code, st)
	}
	if rec := h.do(t, false, "GET", "/v1/jobs/j2", tok, nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "only its own job") {
		t.Errorf("another job: got %d %s, want 403 saying a task reads only its own job", rec.Code, rec.Body)
	}
	if rec := h.do(t, false, "GET", "/v1/jobs/j1", tok, nil); rec.Code != 200 {
		t.Errorf("its own job: got %d %s, want 200", rec.Code, rec.Body)
	}
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: "j1", Reason: raftfsm.ReasonCancelled}})
	if rec := h.do(t, false, "GET", "/v1/status", tok, nil); rec.Code != 409 || errorCode(t, rec) != api.CodeJobClosed {
		t.Errorf("after its job closed: got %d %s, want 409 job_closed", rec.Code, rec.Body)
	}
}

// TestSpawnWritesThroughTheWriter: a spawn is the Jobs service's command,
// written through the Writer, answered with the IDs the write gave and the
// ledger index; refusals and policy errors map to their statuses.
func TestSpawnWritesThroughTheWriter(t *testing.T) {
	cluster := func(h *harness) string { return h.secret.ClusterToken() }
	cases := []struct {
		name     string
		spawnErr error
		res      raftfsm.Result
		err      error
		want     int
		wantCode string
		quota    string
	}{
		{"written", nil, raftfsm.Result{Job: "j7", Task: "t7"}, nil, 200, "", ""},
		{"not accepted", fmt.Errorf("%w: nobody", ErrNotAccepted), raftfsm.Result{}, nil, 403, api.CodeForbidden, ""},
		{"too large", fmt.Errorf("%w: 2 MiB", ErrTooLarge), raftfsm.Result{}, nil, 413, api.CodeQuota, ""},
		{"bad", errors.New("spawn: topic"), raftfsm.Result{}, nil, 400, api.CodeBadRequest, ""},
		{"quota", nil, raftfsm.Result{}, fmt.Errorf("%w: open jobs", raftfsm.ErrQuota), 429, api.CodeQuota, "open_jobs"},
		{"leadership lost", nil, raftfsm.Result{}, leader.ErrNotLeader, 503, api.CodeNoLeader, ""},
		{"not yet", nil, raftfsm.Result{}, fmt.Errorf("%w: schema 3", leader.ErrNotYet), 503, api.CodeNotYet, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, fakeLead{leading: true})
			h.jobs.spawnErr, h.w.res, h.w.err = c.spawnErr, c.res, c.err
			rec := h.do(t, false, "POST", "/v1/spawn", cluster(h), strings.NewReader(`{"topic":"t","args":["a"]}`))
			if rec.Code != c.want || (c.wantCode != "" && errorCode(t, rec) != c.wantCode) {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, c.want, c.wantCode)
			}
			if c.want == 200 {
				var sr api.SpawnResponse
				json.Unmarshal(rec.Body.Bytes(), &sr)
				if sr.Job != "j7" || sr.Task != "t7" || rec.Header().Get(api.IndexHeader) == "" {
					t.Errorf("answer: got %+v, index %q, want j7 t7 and an index", sr, rec.Header().Get(api.IndexHeader))
				}
				if w := h.w.written(); len(w) != 1 || w[0].Type != raftfsm.CmdSpawn || w[0].Spawn.Topic != "t" {
					t.Errorf("written: got %v, want the one spawn", w)
				}
			}
			if c.quota != "" && (len(h.jobs.quota) != 1 || h.jobs.quota[0] != c.quota) {
				t.Errorf("quota refusals counted: got %v, want [%s]", h.jobs.quota, c.quota)
			}
		})
	}
	h := newHarness(t, fakeLead{leading: true})
	if rec := h.do(t, false, "POST", "/v1/spawn", cluster(h), strings.NewReader(`{"topic":"t","argz":[]}`)); rec.Code != 400 || len(h.w.written()) != 0 {
		t.Errorf("an unknown field: got %d, %d written, want 400 and nothing written (strict at the edge)", rec.Code, len(h.w.written()))
	}
}

// TestFollowerRelaysWrites: a follower passes a write, body unread and
// token included, to the leader and marks it forwarded; a forwarded
// request that finds no leader is not passed on again; a client cannot
// forge the mark on the public port.
func TestFollowerRelaysWrites(t *testing.T) {
	var got struct {
		sync.Mutex
		auth, fwd, body string
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		got.auth, got.fwd, got.body = r.Header.Get("Authorization"), r.Header.Get(ForwardedHeader), string(b)
		got.Unlock()
		w.Header().Set(api.IndexHeader, "0")
		WriteJSON(w, 200, api.SpawnResponse{Job: "jx", Task: "tx"})
	}))
	defer up.Close()
	h := newHarness(t, fakeLead{url: up.URL})
	tok := h.secret.ClusterToken()
	body := `{"topic":"t","args":[]}`
	rec := h.do(t, false, "POST", "/v1/spawn", tok, strings.NewReader(body), ForwardedHeader, "forged")
	got.Lock()
	defer got.Unlock()
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"jx"`) {
		t.Errorf("relayed spawn: got %d %s, want the leader's answer", rec.Code, rec.Body)
	}
	if got.auth != "Bearer "+tok || got.fwd != "self" || got.body != body {
		t.Errorf("at the leader: got token %q, forwarded %q, body %q; want the caller's token, forwarded by self, the body as sent", got.auth, got.fwd, got.body)
	}
	if n := len(h.w.written()); n != 0 {
		t.Errorf("the follower wrote %d commands itself, want none", n)
	}
	if rec := h.do(t, true, "POST", "/v1/jobs/j1/cancel", tok, nil, ForwardedHeader, "n2"); rec.Code != 503 || errorCode(t, rec) != api.CodeNoLeader {
		t.Errorf("a forwarded request at a follower: got %d %s, want 503 no_leader", rec.Code, rec.Body)
	}
	h = newHarness(t, fakeLead{})
	if rec := h.do(t, false, "POST", "/v1/jobs/j1/cancel", h.secret.ClusterToken(), nil); rec.Code != 503 || errorCode(t, rec) != api.CodeNoLeader {
		t.Errorf("no leader: got %d %s, want 503 no_leader", rec.Code, rec.Body)
	}
}

// TestSubmitRoute: a node's command is decoded tolerantly, checked against
// what a node may write, and answered with its result, refusals as codes
// in a 200 (the command was decided); a write of unknown fate is a 503.
func TestSubmitRoute(t *testing.T) {
	enc := func(c raftfsm.Command) io.Reader {
		b, err := raftfsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReader(string(b))
	}
	started := raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: "t1", Attempt: 1, Node: "n2"}}
	h := newHarness(t, fakeLead{leading: true})
	tok := h.secret.ClusterToken()

	h.w.err = fmt.Errorf("%w: task t1 attempt 1 is superseded", raftfsm.ErrStaleAttempt)
	rec := h.do(t, true, "POST", peer.SubmitPath, tok, enc(started))
	var a peer.SubmitAnswer
	json.Unmarshal(rec.Body.Bytes(), &a)
	if rec.Code != 200 || !errors.Is(a.Result.Result().Err, raftfsm.ErrStaleAttempt) || !strings.Contains(a.Result.Error, "superseded") {
		t.Errorf("a refusal: got %d %s, want 200 with a stale_attempt refusal", rec.Code, rec.Body)
	}

	h.w.err = leader.ErrNotLeader
	if rec := h.do(t, true, "POST", peer.SubmitPath, tok, enc(started)); rec.Code != 503 {
		t.Errorf("leadership lost: got %d %s, want 503", rec.Code, rec.Body)
	}

	h.w.err = nil
	spawn := raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Topic: "t", Args: []string{}, NewJob: &raftfsm.NewJob{}}}
	before := len(h.w.written())
	for _, c := range []struct {
		name string
		body io.Reader
	}{
		{"a spawn", enc(spawn)},
		{"a close inside a batch", enc(raftfsm.Command{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{started, {Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: "j"}}}})},
		{"garbage", strings.NewReader("\x05{not json")},
	} {
		if rec := h.do(t, true, "POST", peer.SubmitPath, tok, c.body); rec.Code != 400 {
			t.Errorf("%s: got %d %s, want 400", c.name, rec.Code, rec.Body)
		}
	}
	if n := len(h.w.written()) - before; n != 0 {
		t.Errorf("refused submissions wrote %d commands, want none", n)
	}

	// A field a newer binary added is ignored, as Apply ignores it.
	b, _ := raftfsm.Encode(started)
	newer := strings.Replace(string(b), `"task":"t1"`, `"task":"t1","from_the_future":true`, 1)
	if rec := h.do(t, true, "POST", peer.SubmitPath, tok, strings.NewReader(newer)); rec.Code != 200 {
		t.Errorf("an unknown field: got %d %s, want 200", rec.Code, rec.Body)
	}
	if w := h.w.written(); len(w) == 0 || w[len(w)-1].TaskStarted == nil || w[len(w)-1].TaskStarted.Task != "t1" {
		t.Errorf("an unknown field: got %v written, want the start of t1", w)
	}
}

// TestRemovePeer: only dead servers that do not lead are removed, by node
// name (every server of it) or Raft ID.
func TestRemovePeer(t *testing.T) {
	cases := []struct {
		query    string
		want     int
		wantGone []string
	}{
		{"name=n3", 200, []string{"n3-a", "n3-b"}},
		{"id=n3-b", 200, []string{"n3-b"}},
		{"name=n1", 409, nil},
		{"name=n2", 409, nil},
		{"name=n9", 404, nil},
		{"", 400, nil},
		{"name=n3&id=n3-a", 400, nil},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			h := newHarness(t, fakeLead{leading: true})
			rec := h.do(t, false, "POST", "/v1/operator/raft/remove-peer?"+c.query, h.secret.ClusterToken(), nil)
			if rec.Code != c.want || fmt.Sprint(h.op.removed) != fmt.Sprint(c.wantGone) {
				t.Errorf("got %d, removed %v; want %d, removed %v (%s)", rec.Code, h.op.removed, c.want, c.wantGone, rec.Body)
			}
		})
	}
}

// TestNodeRoutes: health needs no token and says why a node is not ok;
// the keyring takes only well-formed keys and lists fingerprints, never
// keys; a snapshot is refused while the leader cannot apply what the mesh
// committed, and a damaged file restores nothing.
func TestNodeRoutes(t *testing.T) {
	h := newHarness(t, fakeLead{leading: true})
	tok := h.secret.ClusterToken()
	if rec := h.do(t, false, "GET", "/v1/health", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"established": true`) {
		t.Errorf("health: got %d %s, want 200, established", rec.Code, rec.Body)
	}
	h.s.Health.(*fakeHealth).why = "disk full"
	if rec := h.do(t, false, "GET", "/v1/health", "", nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), "disk full") {
		t.Errorf("unhealthy: got %d %s, want 503 with the reason", rec.Code, rec.Body)
	}

	key := strings.Repeat("k", 32)
	b64 := base64.StdEncoding.EncodeToString([]byte(key))
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"op":"install","key":"` + b64 + `"}`, 200},
		{`{"op":"install","key":"c2hvcnQ="}`, 400},
		{`{"op":"rotate","key":"` + b64 + `"}`, 400},
		{`{"op":"remove","key":"` + b64 + `"}`, 400},
		{`{"op":"install","key":"` + b64 + `","extra":1}`, 400},
	} {
		rec := h.do(t, false, "POST", "/v1/keyring", tok, strings.NewReader(c.body))
		if rec.Code != c.want || strings.Contains(rec.Body.String(), b64) {
			t.Errorf("keyring %s: got %d %s, want %d and no key in the answer", c.body, rec.Code, rec.Body, c.want)
		}
	}
	if rec := h.do(t, false, "GET", "/v1/keyring", tok, nil); !strings.Contains(rec.Body.String(), KeyFingerprint([]byte(key))) {
		t.Errorf("keyring list: got %s, want the installed key's fingerprint", rec.Body)
	}

	if rec := h.do(t, false, "GET", "/v1/operator/snapshot", tok, nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), "could not apply what the mesh committed") {
		t.Errorf("snapshot save without a barrier: got %d %s, want 503", rec.Code, rec.Body)
	}
	if rec := h.do(t, false, "POST", "/v1/operator/snapshot", tok, strings.NewReader("not a snapshot")); rec.Code != 400 || !strings.Contains(rec.Body.String(), "nothing was restored") {
		t.Errorf("restore of a damaged file: got %d %s, want 400, nothing restored", rec.Code, rec.Body)
	}
}
