package node_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
)

// uiGet fetches a UI page from base with tok as the HTTP Basic password
// ("" for no credentials).
func uiGet(t *testing.T, base, path, tok string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.SetBasicAuth("browser", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, id, data string }

// sseStream reads an event stream in the background for the test to wait on.
type sseStream struct {
	mu     sync.Mutex
	events []sseEvent
	done   chan struct{}
	header http.Header
}

// openEvents opens an event stream from base with tok as Basic password.
func openEvents(t *testing.T, base, path, tok string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("browser", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s%s: %d %s", base, path, resp.StatusCode, b)
	}
	s := &sseStream{done: make(chan struct{}), header: resp.Header}
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-s.done })
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || data != nil {
					ev.data = strings.Join(data, "\n")
					s.mu.Lock()
					s.events = append(s.events, ev)
					s.mu.Unlock()
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[len("data: "):])
			}
		}
	}()
	return s
}

func (s *sseStream) all() []sseEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sseEvent(nil), s.events...)
}

// waitEvent waits for an event (after the first skip ones) that satisfies ok.
func (s *sseStream) waitEvent(t *testing.T, what string, ok func(sseEvent) bool) sseEvent {
	t.Helper()
	var found sseEvent
	nodetest.WaitFor(t, waitLong, what, func() (bool, string) {
		evs := s.all()
		for _, ev := range evs {
			if ok(ev) {
				found = ev
				return true, ""
			}
		}
		names := make([]string, len(evs))
		for i, ev := range evs {
			names[i] = ev.name
		}
		return false, fmt.Sprintf("events so far: %v (stream ended: %v)", names, closed(s.done))
	})
	return found
}

// logText is the text of a stream's log events, tags stripped.
func (s *sseStream) logHTML() string {
	var b strings.Builder
	for _, ev := range s.all() {
		if ev.name == "log" {
			b.WriteString(ev.data)
		}
	}
	return b.String()
}

// TestWebUIJobPageLive checks the job page and its event stream on a mesh:
// auth, escaping, and an event when a task is spawned and when tasks end,
// seen through a node that does not lead.
func TestWebUIJobPageLive(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	cluster := m.Secret.ClusterToken()
	r := spawn(t, m.Client(0), "t", "sh", "-c", "echo <script>alert(1)</script>")
	root, _ := procOf(t, fakes, r.Task)
	waitTask(t, m.Client(0), r.Job, r.Task, "running")
	f := m.Follower()
	base := m.Nodes[f].URL()
	m.WaitFor(waitLong, "the follower's replica to show the root running", func() (bool, string) {
		d, err := m.Client(f).Job(ctx, r.Job, 0, 0)
		if err != nil {
			return false, err.Error()
		}
		return d.Tasks[0].State == "running", string(d.Tasks[0].State)
	})

	for _, path := range []string{"/", "/jobs/" + r.Job, "/tasks/" + r.Task, "/mesh", "/jobs/" + r.Job + "/events"} {
		if code, h, _ := uiGet(t, base, path, ""); code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: %d (WWW-Authenticate %q), want 401 with a Basic challenge", path, code, h.Get("WWW-Authenticate"))
		}
		if code, _, _ := uiGet(t, base, path, "ourci-cluster-not-it"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	code, _, body := uiGet(t, base, "/", cluster)
	if code != 200 || !strings.Contains(body, `href="/jobs/`+r.Job+`"`) {
		t.Fatalf("jobs list: %d\n%s", code, body)
	}
	code, _, body = uiGet(t, base, "/jobs/"+r.Job, cluster)
	if code != 200 {
		t.Fatalf("job page: %d\n%s", code, body)
	}
	if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("job page: the task's argument is not escaped:\n%s", body)
	}
	code, _, body = uiGet(t, base, "/mesh", cluster)
	if code != 200 || !strings.Contains(body, "node0") || !strings.Contains(body, "node1") || !strings.Contains(body, ">leader<") {
		t.Errorf("mesh page: %d\n%s", code, body)
	}

	// A task token sees its own job and no other.
	rootTok := specEnv(root.Spec, "OURCI_TOKEN")
	other := spawn(t, m.Client(0), "nobody-serves-this", "x")
	if code, _, body := uiGet(t, base, "/jobs/"+r.Job, rootTok); code != 200 {
		t.Errorf("own job with the root's task token: %d\n%s", code, body)
	}
	m.WaitFor(waitLong, "the follower's replica to hold the other job", func() (bool, string) {
		_, err := m.Client(f).Job(ctx, other.Job, 0, 0)
		return err == nil, fmt.Sprint(err)
	})
	if code, _, _ := uiGet(t, base, "/jobs/"+other.Job, rootTok); code != http.StatusForbidden {
		t.Errorf("another job with a task token: %d, want 403", code)
	}

	// Follow the page's stream from the index it rendered at.
	d, err := m.Client(f).Job(ctx, r.Job, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	es := openEvents(t, base, fmt.Sprintf("/jobs/%s/events?index=%d", r.Job, d.Index), cluster)
	if ct := es.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events Content-Type %q", ct)
	}
	tc := api.NewClient(specEnv(root.Spec, "OURCI_NODE"), rootTok)
	child, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"make", "<b>test</b>"}, Key: key()})
	if err != nil {
		t.Fatalf("spawn a child with the root's token: %v", err)
	}
	es.waitEvent(t, "a job event showing the spawned child", func(ev sseEvent) bool {
		return ev.name == "job" && strings.Contains(ev.data, `href="/tasks/`+child.Task+`"`) && strings.Contains(ev.data, "&lt;b&gt;test&lt;/b&gt;")
	})
	cp, _ := procOf(t, fakes, child.Task)
	es.waitEvent(t, "a job event showing the child running", func(ev sseEvent) bool {
		return ev.name == "job" && strings.Contains(ev.data, `data-task="`+child.Task+`" data-state="running"`)
	})
	cp.Finish(0)
	es.waitEvent(t, "a job event showing the child passed", func(ev sseEvent) bool {
		return ev.name == "job" && strings.Contains(ev.data, `data-task="`+child.Task+`" data-state="passed"`)
	})
	if evs := es.all(); closed(es.done) {
		t.Fatalf("the stream ended while the job is open: %v", evs)
	}
	root.Finish(0)
	es.waitEvent(t, "the end event once the job closed", func(ev sseEvent) bool { return ev.name == "end" })
	waitClosed(t, es.done, "the stream to end after the job closed")
	var last sseEvent
	for _, ev := range es.all() {
		if ev.name == "job" {
			last = ev
		}
	}
	if !strings.Contains(last.data, "s-passed") || !strings.Contains(last.data, `data-task="`+r.Task+`" data-state="passed"`) {
		t.Errorf("last job event before the end should show the job passed:\n%s", last.data)
	}
}

// TestWebUILogFollow checks that a task's log page streams the log as it
// is written, through a node that did not run the task, with colours.
func TestWebUILogFollow(t *testing.T) {
	m := startMesh(t, 2, func(i int, c *node.Config) {
		if i == 0 {
			c.Topics = topics("t") // node0 runs the task; node1 relays
		}
	})
	ctx := testCtx(t)
	cluster := m.Secret.ClusterToken()
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf(`printf '\033[31mred <one>\033[0m\n'; while [ ! -f %s ]; do sleep 0.05; done; printf '\033[1;32mtwo\033[0m\n'`, flag)
	r := spawn(t, m.Client(0), "t", "sh", "-c", script)
	m.WaitFor(waitLong, "node1's replica to hold the job", func() (bool, string) {
		_, err := m.Client(1).Job(ctx, r.Job, 0, 0)
		return err == nil, fmt.Sprint(err)
	})
	base := m.Nodes[1].URL()
	code, _, body := uiGet(t, base, "/tasks/"+r.Task, cluster)
	if code != 200 || !strings.Contains(body, `data-events="/tasks/`+r.Task+`/log/events"`) {
		t.Fatalf("task page of a running task: %d\n%s", code, body)
	}
	es := openEvents(t, base, "/tasks/"+r.Task+"/log/events", cluster)
	es.waitEvent(t, "the first line, in red", func(ev sseEvent) bool {
		return ev.name == "log" && strings.Contains(es.logHTML(), `<span class="f31">red &lt;one&gt;</span>`)
	})
	if strings.Contains(es.logHTML(), `two</span>`) || closed(es.done) {
		t.Fatalf("before the flag file: %q (ended %v)", es.logHTML(), closed(es.done))
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The masker may hold back the end of a write that could begin a
	// credential ("o" of "ourci-..."): the line may come in two chunks,
	// two spans of the same style.
	es.waitEvent(t, "the second line, bold green", func(ev sseEvent) bool {
		return ev.name == "log" && strings.Contains(strings.ReplaceAll(es.logHTML(), `</span><span class="f32 b">`, ""), `<span class="f32 b">two</span>`)
	})
	end := es.waitEvent(t, "the end event", func(ev sseEvent) bool { return ev.name == "end" })
	if !strings.Contains(end.data, "s-passed") {
		t.Errorf("end event should show the task passed:\n%s", end.data)
	}
	waitClosed(t, es.done, "the stream to end")

	// Once finished, the page shows the log inline.
	code, _, body = uiGet(t, base, "/tasks/"+r.Task, cluster)
	if code != 200 || !strings.Contains(body, `<span class="f31">red &lt;one&gt;</span>`) || strings.Contains(body, `data-events="`) {
		t.Errorf("task page of a finished task: %d\n%s", code, body)
	}
	if code, _, body := uiGet(t, base, "/tasks/"+r.Task+"/log", cluster); code != 200 || !strings.Contains(body, "\x1b[1;32mtwo") {
		t.Errorf("raw log: %d %q", code, body)
	}
}

// TestWebUIBlobs checks that a job's page lists its named blobs and that
// their links download them with the browser's credentials.
func TestWebUIBlobs(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	cluster := m.Secret.ClusterToken()
	r := spawn(t, m.Client(0), "t", "build")
	p, _ := procOf(t, fakes, r.Task)
	content := []byte("firmware image\n")
	if _, err := m.Client(0).PutBlob(ctx, bytes.NewReader(content), url.Values{"name": {"out/fw.bin"}, "job": {r.Job}}); err != nil {
		t.Fatalf("put blob: %v", err)
	}
	f := 1
	m.WaitFor(waitLong, "node1's page to list the blob", func() (bool, string) {
		_, _, body := uiGet(t, m.Nodes[f].URL(), "/jobs/"+r.Job, cluster)
		return strings.Contains(body, `href="/jobs/`+r.Job+`/blobs/out/fw.bin"`), "not listed"
	})
	code, h, body := uiGet(t, m.Nodes[f].URL(), "/jobs/"+r.Job+"/blobs/out/fw.bin", cluster)
	if code != 200 || body != string(content) {
		t.Errorf("blob download through node1: %d %q (%v)", code, body, h)
	}
	if code, _, _ := uiGet(t, m.Nodes[f].URL(), "/jobs/"+r.Job+"/blobs/out/fw.bin", ""); code != http.StatusUnauthorized {
		t.Errorf("blob download without credentials: %d, want 401", code)
	}
	p.Finish(0)
	m.WaitJob(0, r.Job, waitLong)
}
