package web

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

const (
	clusterTok = "cluster-token"
	taskTok    = "task-token-of-job-j2"
)

// fakeSource is a ledger in memory: tests change it with update, which
// moves the index and wakes watchers, as the FSM does.
type fakeSource struct {
	mu     sync.Mutex
	index  uint64
	change chan struct{}
	jobs   map[string]*Job
	order  []string
	logs   map[string]*fakeLog
	// stamped and sections are what a task's sealed log answers; a task
	// without is not sealed yet.
	stamped  map[string]string
	sections map[string]api.LogSections
	done     chan struct{}
	now      time.Time
}

// fakeLog is a task's output that a test writes while readers follow it.
type fakeLog struct {
	mu    sync.Mutex
	data  []byte
	ended bool
	grew  chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{change: make(chan struct{}), jobs: map[string]*Job{}, logs: map[string]*fakeLog{},
		stamped: map[string]string{}, sections: map[string]api.LogSections{}, done: make(chan struct{}), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// update applies fn to the ledger as one entry.
func (f *fakeSource) update(fn func()) {
	f.mu.Lock()
	fn()
	f.index++
	ch := f.change
	f.change = make(chan struct{})
	f.mu.Unlock()
	close(ch)
}

// addJob opens a job (under update).
func (f *fakeSource) addJob(id string, tasks ...api.TaskView) {
	f.update(func() {
		j := &Job{JobDetail: api.JobDetail{SchemaVersion: 1, Job: api.JobView{ID: id, State: raftfsm.JobOpen, Status: raftfsm.StatusPending,
			CreatedAt: f.now.Add(-time.Minute), Deadline: f.now.Add(time.Hour)}, Tasks: tasks}}
		f.jobs[id] = j
		f.order = append(f.order, id)
		f.touch(j)
	})
}

// touch recounts a job and stamps it with the entry's index (under mu).
func (f *fakeSource) touch(j *Job) {
	j.Index = f.index + 1
	j.Job.Tasks, j.Job.Open, j.Job.Passed, j.Job.Failed = len(j.Tasks), 0, 0, 0
	for _, t := range j.Tasks {
		switch {
		case t.State == raftfsm.TaskPassed:
			j.Job.Passed++
		case t.State.Terminal():
			j.Job.Failed++
		default:
			j.Job.Open++
		}
	}
	if j.Job.Open == 0 && len(j.Tasks) > 0 {
		j.Job.State, j.Job.ClosedAt = raftfsm.JobClosed, f.now
		j.Job.Status = raftfsm.StatusPassed
		if j.Job.Failed > 0 {
			j.Job.Status = raftfsm.StatusFailed
		}
	}
}

// setTask adds or replaces a task of job.
func (f *fakeSource) setTask(job string, t api.TaskView) {
	f.update(func() {
		j := f.jobs[job]
		for i := range j.Tasks {
			if j.Tasks[i].ID == t.ID {
				j.Tasks[i] = t
				f.touch(j)
				return
			}
		}
		j.Tasks = append(j.Tasks, t)
		f.touch(j)
	})
}

func (f *fakeSource) log(task string) *fakeLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.logs[task]
	if l == nil {
		l = &fakeLog{grew: make(chan struct{})}
		f.logs[task] = l
	}
	return l
}

func (l *fakeLog) write(s string, end bool) {
	l.mu.Lock()
	l.data = append(l.data, s...)
	l.ended = l.ended || end
	ch := l.grew
	l.grew = make(chan struct{})
	l.mu.Unlock()
	close(ch)
}

func (f *fakeSource) Authenticate(tok string) (Access, error) {
	switch tok {
	case clusterTok:
		return Access{Cluster: true}, nil
	case taskTok:
		return Access{Job: "j2"}, nil
	}
	return Access{}, errors.New("invalid token for this mesh")
}

func (f *fakeSource) NodeName() string { return "node<0>" }
func (f *fakeSource) Now() time.Time   { return f.now }

func (f *fakeSource) Status() api.Status {
	return api.Status{SchemaVersion: 1, Node: "node<0>", Leader: "node0", RaftRole: "leader", Index: 7,
		Members: []api.Member{
			{Name: "node0", HTTP: "127.0.0.1:1", Topics: []string{"build", "<t>"}, Slots: 2, Used: 1, Raft: "voter", Leader: true, Alive: true, Blobs: 3, Bytes: 5 << 20},
			{Name: "node1", HTTP: "127.0.0.1:2", Topics: []string{}, Slots: 4, Raft: "nonvoter", Alive: true, Draining: true},
		},
		Topics:  []api.Topic{{Name: "build", Nodes: []string{"node0"}, Slots: 2, Used: 1, Queued: 1}},
		Waiting: []api.Waiting{{Task: "tq", Job: "j1", Topic: "gpu", Reason: "no node subscribes to gpu"}, {Task: "tr", Job: "j2", Topic: "gpu", Reason: "all slots busy"}},
	}
}

func (f *fakeSource) Jobs(n int) []api.JobView {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.JobView
	for i := len(f.order) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, f.jobs[f.order[i]].Job)
	}
	return out
}

func (f *fakeSource) Job(id string) (Job, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	if j == nil {
		return Job{}, false
	}
	c := *j
	c.Tasks = append([]api.TaskView(nil), j.Tasks...)
	return c, true
}

func (f *fakeSource) Task(id string) (Task, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		for _, t := range j.Tasks {
			if t.ID == id {
				return Task{Job: j.Job.ID, Task: t}, true
			}
		}
	}
	return Task{}, false
}

func (f *fakeSource) Watch() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.change
}

func (f *fakeSource) Log(ctx context.Context, task string, follow bool) (io.ReadCloser, error) {
	l := f.log(task)
	pr, pw := io.Pipe()
	go func() {
		off := 0
		for {
			l.mu.Lock()
			chunk, ended, grew := l.data[off:], l.ended, l.grew
			l.mu.Unlock()
			if len(chunk) > 0 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
				off += len(chunk)
			}
			if ended || !follow {
				pw.Close()
				return
			}
			select {
			case <-grew:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	return pr, nil
}

func (f *fakeSource) StampedLog(ctx context.Context, task string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.stamped[task]
	if !ok {
		return nil, &api.StatusError{HTTPStatus: http.StatusServiceUnavailable, Code: api.CodeNotFound, Msg: "no stamped copy yet"}
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

func (f *fakeSource) LogSections(ctx context.Context, task string, attempt int) (api.LogSections, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sections[task]
	if !ok {
		return api.LogSections{}, &api.StatusError{HTTPStatus: http.StatusConflict, Code: api.CodeConflict, Msg: "not sealed yet"}
	}
	if s.Attempt != attempt {
		return api.LogSections{}, &api.StatusError{HTTPStatus: http.StatusNotFound, Code: api.CodeNotFound, Msg: "no such attempt"}
	}
	return s, nil
}

func (f *fakeSource) ServeBlob(w http.ResponseWriter, r *http.Request, job, name string) {
	io.WriteString(w, "blob "+name+" of "+job)
}

func (f *fakeSource) Done() <-chan struct{} { return f.done }

// server starts the UI over a fake source.
func server(t *testing.T) (*fakeSource, *UI, *httptest.Server) {
	t.Helper()
	f := newFakeSource()
	u := New(f)
	srv := httptest.NewServer(u.Handler())
	t.Cleanup(srv.Close)
	return f, u, srv
}

// get fetches path with the token as Basic auth password ("" for none).
func get(t *testing.T, srv *httptest.Server, path, tok string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.SetBasicAuth("me", tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func running(id, parent string, args ...string) api.TaskView {
	return api.TaskView{ID: id, Parent: parent, Topic: "build", Args: args, State: raftfsm.TaskRunning, Node: "node0", Attempt: 1,
		CreatedAt: time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC), StartedAt: time.Date(2026, 3, 1, 11, 59, 30, 0, time.UTC)}
}

func TestAuth(t *testing.T) {
	f, _, srv := server(t)
	f.addJob("j1", running("t1", ""))
	f.addJob("j2", running("t2", ""))
	for _, path := range []string{"/", "/jobs/j1", "/jobs/j1/events", "/tasks/t1", "/tasks/t1/log", "/tasks/t1/log/events", "/mesh", "/jobs/j1/blobs/x"} {
		code, h, _ := get(t, srv, path, "")
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s without credentials: %d, WWW-Authenticate %q; want 401 and a Basic challenge", path, code, h.Get("WWW-Authenticate"))
		}
		if code, _, _ := get(t, srv, path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	for _, path := range []string{"/", "/jobs/j1", "/tasks/t1", "/mesh"} {
		if code, h, body := get(t, srv, path, clusterTok); code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s with the cluster token: %d %s\n%s", path, code, h.Get("Content-Type"), body)
		}
	}
	// A bearer token works as well.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/mesh", nil)
	req.Header.Set("Authorization", "Bearer "+clusterTok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("bearer token: %d, want 200", resp.StatusCode)
	}
	// A task token sees its own job only.
	for path, want := range map[string]int{"/jobs/j2": 200, "/tasks/t2": 200, "/jobs/j1": 403, "/tasks/t1": 403, "/jobs/j1/events": 403,
		"/tasks/t1/log/events": 403, "/tasks/t1/log": 403, "/jobs/j1/blobs/x": 403, "/jobs/j2/blobs/x": 200} {
		if code, _, _ := get(t, srv, path, taskTok); code != want {
			t.Errorf("GET %s with a task token of j2: %d, want %d", path, code, want)
		}
	}
	_, _, body := get(t, srv, "/", taskTok)
	if !strings.Contains(body, `href="/jobs/j2"`) || strings.Contains(body, `href="/jobs/j1"`) {
		t.Errorf("jobs list for a task token of j2 should list j2 alone:\n%s", body)
	}
	_, _, body = get(t, srv, "/mesh", taskTok)
	if !strings.Contains(body, "all slots busy") || strings.Contains(body, "no node subscribes to gpu") {
		t.Errorf("mesh page for a task token of j2 should show only j2's waiting tasks:\n%s", body)
	}
}

func TestPagesEscape(t *testing.T) {
	f, _, srv := server(t)
	root := running("t1", "", "sh", "-c", "echo <script>alert(1)</script>")
	child := running("t2", "t1", `"><img src=x onerror=alert(2)>`)
	child.State, child.Waiting = raftfsm.TaskQueued, "<b>no node</b>"
	f.addJob("j1", root, child)
	f.update(func() {
		j := f.jobs["j1"]
		j.Job.Trigger = "<i>mallory</i>"
		j.Job.Source = raftfsm.Source{Repo: "https://github.com/acme/widget.git", Branch: "fix/<x>", SHA: "0123456789abcdef0123456789abcdef01234567", PR: 12}
		j.Job.GitHub = &raftfsm.GitHub{Owner: "acme", Name: "widget", Author: raftfsm.Author{Name: "Dev <dev@x>"}}
		j.Blobs = []Blob{{Name: "dist/app.tar.gz", Hash: "sha256:aaaa", Size: 2048}}
		f.touch(j)
	})
	for _, path := range []string{"/", "/jobs/j1", "/tasks/t1", "/tasks/t2", "/mesh"} {
		code, _, body := get(t, srv, path, clusterTok)
		if code != 200 {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>no node", "<i>mallory", "fix/<x>", "node<0>", "<t>"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: unescaped %q in\n%s", path, bad, body)
			}
		}
		for _, want := range []string{`<meta name="viewport" content="width=device-width, initial-scale=1">`, "<style>"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: no %q", path, want)
			}
		}
		if strings.Contains(body, "http://") && !strings.Contains(path, "mesh") || strings.Contains(body, "<link rel=\"stylesheet\"") {
			t.Errorf("GET %s: the page refers to an external asset", path)
		}
	}
	_, _, body := get(t, srv, "/jobs/j1", clusterTok)
	for _, want := range []string{
		"echo &lt;script&gt;alert(1)&lt;/script&gt;",
		`href="/tasks/t2"`, `padding-left:calc(.7rem + 1 * 1.1rem)`,
		`href="https://github.com/acme/widget/pull/12"`, `href="https://github.com/acme/widget/commit/0123456789abcdef0123456789abcdef01234567"`, ">0123456<",
		`href="/jobs/j1/blobs/dist/app.tar.gz"`, "2.0 KiB",
		`data-events="/jobs/j1/events?index=`,
		"&lt;i&gt;mallory&lt;/i&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("job page: no %q in\n%s", want, body)
		}
	}
	_, _, body = get(t, srv, "/mesh", clusterTok)
	for _, want := range []string{"leader</span>", "1 / 2", "5.0 MiB", "draining", "no node subscribes to gpu", "nonvoter"} {
		if !strings.Contains(body, want) {
			t.Errorf("mesh page: no %q in\n%s", want, body)
		}
	}
	if code, _, body := get(t, srv, "/jobs/nope", clusterTok); code != 404 || !strings.Contains(body, "no job nope") {
		t.Errorf("missing job: %d\n%s", code, body)
	}
	if _, _, body := get(t, srv, "/jobs/j1/blobs/dist/app.tar.gz", clusterTok); body != "blob dist/app.tar.gz of j1" {
		t.Errorf("blob download: got %q", body)
	}
}

func TestANSI(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"<b>&\"'", "&lt;b&gt;&amp;&#34;&#39;"},
		{"\x1b[31mred\x1b[0m plain", `<span class="f31">red</span> plain`},
		{"\x1b[1;32mok\x1b[m", `<span class="f32 b">ok</span>`},
		{"\x1b[91mhi\x1b[39m x", `<span class="f91">hi</span> x`},
		{"\x1b[1mB\x1b[34mb\x1b[22mn", `<span class="b">B</span><span class="f34 b">b</span><span class="f34">n</span>`},
		{"\x1b[30ma\x1b[37mb\x1b[90mc\x1b[97md", `<span class="f30">a</span><span class="f37">b</span><span class="f90">c</span><span class="f97">d</span>`},
		{"\x1b[41;97m!\x1b[49m.", `<span class="f97 g41">!</span><span class="f97">.</span>`},
		{"\x1b[38;5;196mx\x1b[0m", `x`},                          // 256 colours: shown plain, not misread as 5 and 196
		{"\x1b[38;2;1;2;3;31mx", `<span class="f31">x</span>`},   // true colour skipped, then red
		{"a\x1b[2Kb\x1b[1Gc\x1b[?25ld", "abcd"},                  // other CSI sequences dropped
		{"\x1b]0;title\x07t\x1b]8;;http://x\x1b\\link", "tlink"}, // OSC dropped
		{"cr\r\nlf\n\ttab\x07bell\x08", "cr\nlf\n\ttabbell"},
		{"\x1b[31m<script>\x1b[0m", `<span class="f31">&lt;script&gt;</span>`},
		{"bad \xff utf8 ü", "bad \ufffd utf8 ü"},
		{"\x1b[31", ""},
	} {
		if got := RenderANSI(c.in); got != c.want {
			t.Errorf("RenderANSI(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Chunk boundaries anywhere: inside an escape sequence, inside a
	// UTF-8 character. Each chunk's HTML closes its own spans, and the
	// text comes out the same.
	in := "a\x1b[1;31mbü€\x1b[0mc\x1b[32md"
	for cut := 0; cut <= len(in); cut++ {
		var a ANSI
		got := a.Render([]byte(in[:cut])) + a.Render([]byte(in[cut:]))
		if strip(got) != "abü€cd" || strings.Count(got, "<span") != strings.Count(got, "</span>") {
			t.Errorf("cut at %d: %q", cut, got)
		}
		if !strings.Contains(got, `class="f31 b">b`) && !strings.Contains(got, `class="f31 b">bü`) {
			t.Errorf("cut at %d: lost the colour: %q", cut, got)
		}
	}
}

// strip drops tags.
func strip(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestEventFieldsCannotBeInjected(t *testing.T) {
	rec := httptest.NewRecorder()
	es, err := startEvents(rec)
	if err != nil {
		t.Fatal(err)
	}
	es.send("job", "1\n2", "a\rid: 9\nevent: end\r\ndata: x")
	want := "retry: 2000\n\nid: 12\nevent: job\ndata: a\ndata: id: 9\ndata: event: end\ndata: data: x\n\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
}

// event is one Server-Sent Event.
type event struct{ name, id, data string }

// events reads a stream's events into a channel, closed at its end;
// comments come as events named ":".
func events(t *testing.T, srv *httptest.Server, path, tok, lastID string) (<-chan event, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	req.SetBasicAuth("", tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan event, 100)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev event
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || data != nil {
					ev.data = strings.Join(data, "\n")
					ch <- ev
				}
				ev, data = event{}, nil
			case strings.HasPrefix(line, ":"):
				ch <- event{name: ":"}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return ch, resp
}

// next waits for the next event that is not a heartbeat.
func next(t *testing.T, ch <-chan event, what string) event {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("waiting for %s: the stream ended", what)
			}
			if ev.name == ":" {
				continue
			}
			return ev
		case <-timer.C:
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// ended waits for the stream's end.
func ended(t *testing.T, ch <-chan event) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if ev.name != ":" {
				t.Fatalf("want the end of the stream, got event %+v", ev)
			}
		case <-timer.C:
			t.Fatal("waited 10s for the stream to end")
		}
	}
}

func TestJobEvents(t *testing.T) {
	f, u, srv := server(t)
	u.Heartbeat = 20 * time.Millisecond
	f.addJob("j1", running("t1", ""))
	j, _ := f.Job("j1")
	ch, resp := events(t, srv, "/jobs/j1/events?index="+itoa(j.Index), clusterTok, "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// Heartbeats while nothing changes; no event for the state the page has.
	timer := time.NewTimer(10 * time.Second)
	for beats := 0; beats < 2; {
		select {
		case ev := <-ch:
			if ev.name != ":" {
				t.Fatalf("before any change: got %+v", ev)
			}
			beats++
		case <-timer.C:
			t.Fatal("no heartbeat within 10s")
		}
	}
	timer.Stop()
	// An unrelated ledger change sends nothing; a spawned task does.
	f.addJob("j9")
	f.setTask("j1", running("t2", "t1", "make", "<test>"))
	ev := next(t, ch, "the job event for the spawned task")
	if ev.name != "job" || !strings.Contains(ev.data, `href="/tasks/t2"`) || !strings.Contains(ev.data, "&lt;test&gt;") || ev.id == "" {
		t.Fatalf("after a spawn: %+v", ev)
	}
	j, _ = f.Job("j1")
	if ev.id != itoa(j.Index) {
		t.Errorf("event id %s, want the job's index %d", ev.id, j.Index)
	}
	done := running("t2", "t1", "make", "<test>")
	code := 0
	done.State, done.ExitCode, done.FinishedAt = raftfsm.TaskPassed, &code, f.now
	f.setTask("j1", done)
	ev = next(t, ch, "the job event for the finished task")
	if ev.name != "job" || !strings.Contains(ev.data, `data-task="t2" data-state="passed"`) {
		t.Fatalf("after t2 passed: %+v", ev)
	}
	root := running("t1", "")
	root.State, root.ExitCode, root.FinishedAt = raftfsm.TaskFailed, new(int), f.now
	*root.ExitCode = 3
	f.setTask("j1", root)
	ev = next(t, ch, "the last job event")
	if ev.name != "job" || !strings.Contains(ev.data, "s-failed") {
		t.Fatalf("after t1 failed: %+v", ev)
	}
	if ev := next(t, ch, "the end event"); ev.name != "end" {
		t.Fatalf("after the job closed: %+v", ev)
	}
	ended(t, ch)

	// A browser coming back to a closed job gets its state (if newer) and the end.
	ch, _ = events(t, srv, "/jobs/j1/events", clusterTok, "1")
	if ev := next(t, ch, "the job event"); ev.name != "job" {
		t.Fatalf("reconnect: %+v", ev)
	}
	if ev := next(t, ch, "the end"); ev.name != "end" {
		t.Fatalf("reconnect: %+v", ev)
	}
	ended(t, ch)
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestLogEvents(t *testing.T) {
	f, u, srv := server(t)
	u.Heartbeat = time.Hour
	f.addJob("j1", running("t1", ""))
	l := f.log("t1")
	l.write("one \x1b[3", false) // an escape sequence cut in two
	ch, _ := events(t, srv, "/tasks/t1/log/events", clusterTok, "")
	ev := next(t, ch, "the first chunk")
	if ev.name != "log" || ev.data != "one " || ev.id != "1:7" {
		t.Fatalf("first chunk: %+v", ev)
	}
	l.write("2m<two>\x1b[0m\n", false)
	ev = next(t, ch, "the second chunk")
	if ev.name != "log" || ev.data != `<span class="f32">&lt;two&gt;</span>`+"\n" || ev.id != "1:19" {
		t.Fatalf("second chunk: %+v", ev)
	}
	// The task's summary follows the ledger.
	tv := running("t1", "")
	tv.Node = "node<7>"
	f.setTask("j1", tv)
	ev = next(t, ch, "the task event")
	if ev.name != "task" || !strings.Contains(ev.data, "node&lt;7&gt;") {
		t.Fatalf("task event: %+v", ev)
	}

	// A browser reconnecting after the second chunk gets only what follows.
	ch2, _ := events(t, srv, "/tasks/t1/log/events", clusterTok, "1:19")
	l.write("three\n", true)
	for _, c := range []<-chan event{ch, ch2} {
		ev = next(t, c, "the third chunk")
		if ev.name != "log" || ev.data != "three\n" || ev.id != "1:25" {
			t.Fatalf("third chunk: %+v", ev)
		}
	}
	// The log ended: the stream waits for the ledger to say how the task ended.
	tv.State, tv.ExitCode, tv.FinishedAt = raftfsm.TaskPassed, new(int), f.now
	f.setTask("j1", tv)
	for _, c := range []<-chan event{ch, ch2} {
		ev = next(t, c, "the end")
		for ev.name == "task" {
			ev = next(t, c, "the end")
		}
		if ev.name != "end" || !strings.Contains(ev.data, "s-passed") {
			t.Fatalf("end: %+v", ev)
		}
		ended(t, c)
	}

	// A finished task's page shows its log inline, rendered, a line each.
	_, _, body := get(t, srv, "/tasks/t1", clusterTok)
	if !strings.Contains(body, `<a class="n" href="#L1">1</a>one <span class="f32">&lt;two&gt;</span></span>`+"\n"+`<span class="l" id="L2"><a class="n" href="#L2">2</a>three</span>`) || strings.Contains(body, `data-events="`) {
		t.Errorf("finished task page:\n%s", body)
	}
	if _, _, body := get(t, srv, "/tasks/t1/log", clusterTok); body != "one \x1b[32m<two>\x1b[0m\nthree\n" {
		t.Errorf("raw log: %q", body)
	}
}

// A finished task's page numbers its lines, each an anchor with a link to
// itself, gives each its arrival time (shown by a toggle), and lists the
// log's sections, linked to their first lines; whatever the task wrote
// is escaped.
func TestTaskPageLinesAndSections(t *testing.T) {
	f, _, srv := server(t)
	done := running("t1", "")
	done.State, done.ExitCode, done.FinishedAt = raftfsm.TaskPassed, new(int), f.now
	f.addJob("j1", done)
	f.log("t1").write("plain copy\n", true)
	t0 := time.Date(2026, 3, 1, 11, 59, 40, 123_000_000, time.UTC)
	f.update(func() {
		f.stamped["t1"] = "2026-03-01T11:59:40.123Z intro </pre><script>alert(1)</script>\n" +
			"2026-03-01T11:59:40.200Z ::group::<b>build</b>\n" +
			"2026-03-01T11:59:41.700Z \x1b[32mok\x1b[0m\n" +
			"<i>no stamp</i> at all\n" +
			"2026-03-01T11:59:42.000Z the end"
		f.sections["t1"] = api.LogSections{SchemaVersion: 1, Task: "t1", Attempt: 1, Lines: 5, Sections: []api.LogSection{
			{Name: "<b>build</b>", Title: "<b>build</b>", Style: "github", FirstLine: 2, LastLine: 3, Start: t0, End: t0.Add(1500 * time.Millisecond), DurationMs: 1500},
			{Name: "inner", Title: "Inner <x>", Style: "gitlab", FirstLine: 3, LastLine: 5, Start: t0, End: t0, Depth: 1, Open: true},
		}}
	})
	code, _, body := get(t, srv, "/tasks/t1", clusterTok)
	if code != 200 {
		t.Fatalf("GET /tasks/t1: %d\n%s", code, body)
	}
	for _, want := range []string{
		`<span class="l" id="L1"><a class="n" href="#L1">1</a><time class="ts" datetime="2026-03-01T11:59:40.123Z">2026-03-01T11:59:40.123Z</time>intro &lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;</span>`,
		`<span class="l" id="L3"><a class="n" href="#L3">3</a><time class="ts" datetime="2026-03-01T11:59:41.700Z">2026-03-01T11:59:41.700Z</time><span class="f32">ok</span></span>`,
		`<span class="l" id="L4"><a class="n" href="#L4">4</a>&lt;i&gt;no stamp&lt;/i&gt; at all</span>`,
		`<span class="l" id="L5"><a class="n" href="#L5">5</a><time class="ts" datetime="2026-03-01T11:59:42.000Z">2026-03-01T11:59:42.000Z</time>the end</span>`,
		`<input type="checkbox" id="stamps" class="toggle">`,
		`#stamps:checked ~ pre.lines .ts{display:inline}`,
		`<h2>Sections</h2>`,
		`<a href="#L2">&lt;b&gt;build&lt;/b&gt;</a>`,
		`<a href="#L2">2</a>–<a href="#L3">3</a>`,
		`<td class="num">1.5s</td>`,
		`<td class="mono small">2026-03-01T11:59:40.123Z</td>`,
		`padding-left:calc(.7rem + 1 * 1.1rem)`,
		`<a href="#L3">inner</a> <span class="muted">Inner &lt;x&gt;</span> <span class="small muted">(not closed)</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("finished task page: no %q in\n%s", want, body)
		}
	}
	for _, bad := range []string{"<script>alert", "<b>build", "<i>no stamp", "Inner <x>", "\x1b", `id="L6"`, "plain copy", `class="note"`} {
		if strings.Contains(body, bad) {
			t.Errorf("finished task page: %q in\n%s", bad, body)
		}
	}

	// Not sealed yet: the plain log, numbered, no times, no toggle, and
	// a note that the sections come.
	f.update(func() { delete(f.stamped, "t1"); delete(f.sections, "t1") })
	_, _, body = get(t, srv, "/tasks/t1", clusterTok)
	if !strings.Contains(body, `<span class="l" id="L1"><a class="n" href="#L1">1</a>plain copy</span>`) ||
		strings.Contains(body, `<time`) || strings.Contains(body, `id="stamps"`) || strings.Contains(body, "<h2>Sections</h2>") ||
		!strings.Contains(body, "Sections are listed once the log is sealed") {
		t.Errorf("finished task page, log not sealed yet:\n%s", body)
	}

	// A running task's page follows the log: no lines, no sections yet.
	f.addJob("j2", running("t2", ""))
	_, _, body = get(t, srv, "/tasks/t2", clusterTok)
	if !strings.Contains(body, `data-events="/tasks/t2/log/events"`) || strings.Contains(body, `id="L1"`) || strings.Contains(body, "Sections") {
		t.Errorf("running task page:\n%s", body)
	}
}

func TestReadLines(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5_000_000, time.UTC)
	long := strings.Repeat("x", 100<<10) // past the reader's buffer
	type line struct {
		at   time.Time
		data string
	}
	for _, tc := range []struct {
		name            string
		in              string
		stamped         bool
		maxLines, limit int
		want            []line
		truncated       bool
	}{
		{"plain", "a\nb", false, 10, 100, []line{{data: "a\n"}, {data: "b"}}, false},
		{"stamped", "2026-03-01T12:00:00.005Z a\n2026-03-01T12:00:00.005Z \n", true, 10, 100, []line{{at, "a\n"}, {at, "\n"}}, false},
		{"a stamp in a plain log is text", "2026-03-01T12:00:00.005Z a\n", false, 10, 100, []line{{data: "2026-03-01T12:00:00.005Z a\n"}}, false},
		{"not a stamp", "2026-13-01T12:00:00.005Z a\nshort\n", true, 10, 100, []line{{data: "2026-13-01T12:00:00.005Z a\n"}, {data: "short\n"}}, false},
		{"a long line", "2026-03-01T12:00:00.005Z " + long + "\nz\n", true, 10, 200 << 10, []line{{at, long + "\n"}, {data: "z\n"}}, false},
		{"bytes bounded", "abc\ndef\n", false, 10, 6, []line{{data: "abc\n"}, {data: "de"}}, true},
		{"bytes exactly", "abc\ndef\n", false, 10, 8, []line{{data: "abc\n"}, {data: "def\n"}}, false},
		{"lines bounded", "a\nb\nc\n", false, 2, 100, []line{{data: "a\n"}, {data: "b\n"}}, true},
		{"empty", "", true, 10, 100, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated, err := readLines(strings.NewReader(tc.in), tc.stamped, tc.maxLines, tc.limit)
			var g []line
			for _, l := range got {
				g = append(g, line{l.at, string(l.data)})
			}
			if err != nil || truncated != tc.truncated || len(g) != len(tc.want) {
				t.Fatalf("got %d lines, truncated %v, %v; want %d, %v", len(g), truncated, err, len(tc.want), tc.truncated)
			}
			for i := range g {
				if !g[i].at.Equal(tc.want[i].at) || g[i].data != tc.want[i].data {
					t.Errorf("line %d: got {%v %.40q}, want {%v %.40q}", i, g[i].at, g[i].data, tc.want[i].at, tc.want[i].data)
				}
			}
		})
	}
}
