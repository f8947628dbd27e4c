package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	ournode "github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// browserWait bounds every wait on the browser or the mesh.
const browserWait = 30 * time.Second

// chromiumPath finds Debian's Chromium. Without one the test is skipped,
// loudly, unless OURCI_REQUIRE_BROWSER=1 (CI), which makes it fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium on PATH: the browser test needs Debian's chromium (apt-get install -y chromium)"
	if os.Getenv("OURCI_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; OURCI_REQUIRE_BROWSER=1 makes that a failure")
	}
	t.Log("SKIPPED: " + msg)
	t.Skip(msg)
	return ""
}

// artifactDir is where screenshots go: $OURCI_ARTIFACTS, else a temp dir.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OURCI_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
}

func startBrowser(t *testing.T, token string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: bctx, dir: artifactDir(t)}
	// Start the browser under no deadline (its life is bctx's), but give up
	// on a browser that does not come up.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			bcancel()
			acancel()
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(browserWait):
		bcancel()
		acancel()
		<-started
		t.Fatalf("chromium did not start within %s", browserWait)
	}
	messages := chromedp.Console(bctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		bcancel()
		acancel()
		select {
		case <-consoleDone:
		case <-time.After(browserWait):
			t.Errorf("the browser's console reader did not stop")
		}
	})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("browser:"+token))
	b.do("send the token as Basic auth", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	})
	return b
}

// do runs fn under a deadline; on failure the test fails with the page.
func (b *browser) do(what string, fn func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := fn(ctx); err != nil {
		b.t.Fatalf("browser: %s: %v\npage:\n%s", what, err, b.html())
	}
}

// html is the page's markup, for failure messages.
func (b *browser) html() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

func (b *browser) navigate(url string) {
	b.t.Helper()
	b.do("open "+url, func(ctx context.Context) error { return chromedp.Do(ctx, chromedp.Navigate(url)) })
}

// eval evaluates a JavaScript expression.
func (b *browser) eval(expr string) {
	b.t.Helper()
	b.do("evaluate "+expr, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](expr))
	})
}

// until waits until a JavaScript expression is truthy.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	b.do("wait for "+what+" ("+expr+")", func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(browserWait), chromedp.WithPollingInterval(20*time.Millisecond)))
		return err
	})
}

// screenshot saves the whole page as a PNG among the artifacts.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	var png []byte
	b.do("screenshot "+name, func(ctx context.Context) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
	return p
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// fakeProc waits until the fake executor starts task.
func fakeProc(t *testing.T, f *executor.Fake, task string) *executor.FakeProcess {
	t.Helper()
	var proc *executor.FakeProcess
	nodetest.WaitFor(t, browserWait, "task "+task+" started on the fake executor", func() (bool, string) {
		for _, p := range f.Procs() {
			for _, kv := range p.Spec.Env {
				if kv == "OURCI_TASK="+task {
					proc = p
					return true, ""
				}
			}
		}
		return false, "not started"
	})
	return proc
}

// taskClient is an API client holding a fake task's own token.
func taskClient(p *executor.FakeProcess) *api.Client {
	env := map[string]string{}
	for _, kv := range p.Spec.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return api.NewClient(env["OURCI_NODE"], env["OURCI_TOKEN"])
}

// TestBrowserUI drives headless Chromium through the web UI of an
// in-process mesh: a running job's page shows a newly spawned task without
// a reload, and a task's log page shows lines as the task prints them.
func TestBrowserUI(t *testing.T) {
	chromiumPath(t) // skip (or fail) before starting a mesh
	fake := executor.NewFake()
	m := nodetest.Start(t, 2, func(i int, c *ournode.Config) {
		if i == 0 {
			c.Executor, c.Topics, c.Slots = fake, []ournode.Topic{{Name: "build"}}, 8 // node0: a fake executor
		} else {
			c.Topics = []ournode.Topic{{Name: "test"}} // node1: real shell commands
		}
	})
	m.WaitRaft(browserWait)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	spawn := func(c *api.Client, topic string, args ...string) api.SpawnResponse {
		t.Helper()
		r, err := c.Spawn(ctx, api.SpawnRequest{Topic: topic, Args: args, Trigger: "alice (ourci-node spawn)", Key: rand.Text()})
		if err != nil {
			t.Fatalf("spawn %s %q: %v", topic, args, err)
		}
		return r
	}
	waitState := func(job, task, state string) {
		t.Helper()
		nodetest.WaitFor(t, browserWait, "task "+task+" "+state, func() (bool, string) {
			d, err := m.Client(0).Job(ctx, job, 0, 0)
			if err != nil {
				return false, err.Error()
			}
			for _, tv := range d.Tasks {
				if tv.ID == task {
					return string(tv.State) == state, string(tv.State)
				}
			}
			return false, "no such task"
		})
	}

	// A pipeline: the root spawns a build (which spawns a packaging step)
	// and a lint that fails.
	job := spawn(m.Client(0), "build", "./ci/pipeline.sh", "--target=<all>")
	root := fakeProc(t, fake, job.Task)
	rootAPI := taskClient(root)
	build := spawn(rootAPI, "build", "make", "-j2", "all")
	buildProc := fakeProc(t, fake, build.Task)
	pkg := spawn(taskClient(buildProc), "build", "tar", "czf", "dist/app.tar.gz", "out/")
	fakeProc(t, fake, pkg.Task).Finish(0)
	buildProc.Finish(0)
	lint := spawn(rootAPI, "build", "golangci-lint", "run", "./...")
	fakeProc(t, fake, lint.Task).Finish(2)
	waitState(job.Job, lint.Task, "failed")
	waitState(job.Job, build.Task, "passed")
	const blobBody = "packaged app\n"
	if _, err := rootAPI.PutBlob(ctx, strings.NewReader(blobBody), url.Values{"name": {"dist/app.tar.gz"}}); err != nil {
		t.Fatalf("put a blob with the root's token: %v", err)
	}

	// node0 serves the pages; the test task runs on node1, so its log is
	// relayed.
	base := m.Nodes[0].URL()
	b := startBrowser(t, m.Secret.ClusterToken())
	b.navigate(base + "/jobs/" + job.Job)
	b.until("the job's tree", fmt.Sprintf(`document.getElementById("task-%s") && document.getElementById("task-%s")`, job.Task, lint.Task))
	b.until("the page's event stream to be live", `document.getElementById("live").textContent === "live"`)
	b.eval(`window.ourciNoReload = 1`)
	b.do("download the job's blob through its link", func(ctx context.Context) error {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`fetch(document.querySelector('a[download][href$="/blobs/dist/app.tar.gz"]').href).then(r => r.text().then(t => r.status + " " + t))`,
			chromedp.EvalAwaitPromise))
		if err == nil && got != "200 "+blobBody {
			err = fmt.Errorf("got %q, want %q", got, "200 "+blobBody)
		}
		return err
	})

	// A task spawned now appears without a reload.
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf(`printf '\033[1;34m==>\033[0m go test ./...\n'; printf '\033[32mline one\033[0m: ok  \tgithub.com/acme/widget\t0.41s\n';
while [ ! -f %s ]; do sleep 0.05; done
printf '\033[31mline two\033[0m: FAIL <b>not bold</b>\n'; printf '\033[1mline three\033[0m\n'`, flag)
	test := spawn(rootAPI, "test", "sh", "-c", script)
	b.until("the spawned task in the tree", fmt.Sprintf(`document.getElementById("task-%s") !== null`, test.Task))
	b.until("the spawned task running", fmt.Sprintf(`document.getElementById("task-%s").dataset.state === "running"`, test.Task))
	b.until("no reload", `window.ourciNoReload === 1`)
	jobShot := b.screenshot("browser-job.png")

	// The task's log page follows the log live.
	b.navigate(base + "/tasks/" + test.Task)
	b.until("the first lines", `document.getElementById("log").textContent.includes("line one")`)
	b.until("colours", `document.querySelector("#log span.f32") !== null && document.querySelector("#log span.f34.b") !== null`)
	b.eval(`window.ourciNoReload = 2`)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b.until("the lines printed after the flag", `document.getElementById("log").textContent.includes("line three")`)
	b.until("escaped markup in the log", `document.getElementById("log").textContent.includes("<b>not bold</b>") && document.querySelector("#log b") === null`)
	b.until("the task passed", `document.querySelector("#task .badge").textContent === "passed" && document.getElementById("live").textContent === "finished" && document.getElementById("relines") !== null`)
	b.until("no reload", `window.ourciNoReload === 2`)
	logShot := b.screenshot("browser-task-log.png")
	b.navigate(base + "/tasks/" + test.Task)
	b.until("the finished log's lines numbered, with anchors", `document.querySelector('#L1 a.n[href="#L1"]') !== null && Array.from(document.querySelectorAll('#log span.l[id^="L"]')).some(function (l) { return l.textContent.includes("line three"); })`)

	// The job closes; the jobs list and the mesh show it, also on a phone.
	root.Finish(0)
	m.WaitJob(0, job.Job, browserWait)
	b.navigate(base + "/")
	b.until("the jobs list", fmt.Sprintf(`document.querySelector('tr[data-job="%s"]') !== null`, job.Job))
	b.screenshot("browser-jobs.png")
	b.navigate(base + "/mesh")
	b.until("the mesh", `document.querySelectorAll("tr[data-member]").length === 2`)
	b.screenshot("browser-mesh.png")
	b.do("emulate a phone", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	})
	b.navigate(base + "/jobs/" + job.Job)
	b.until("the closed job", `document.querySelector("h1 .badge").textContent === "failed"`)
	b.until("no page wider than the phone", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot("browser-job-phone.png")

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("job page: %s, task log: %s", jobShot, logShot)
}

// TestBrowserReadsADeadNodesLog: the log page of a task whose node has
// died shows its whole log, served from a sealed copy on another node.
func TestBrowserReadsADeadNodesLog(t *testing.T) {
	chromiumPath(t)
	m := nodetest.Start(t, 3, func(i int, c *ournode.Config) {
		if i == 2 {
			c.Topics = []ournode.Topic{{Name: "test"}} // node2 runs the task, then dies
		}
	})
	m.WaitRaft(browserWait)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "test", Key: rand.Text(), Args: []string{"sh", "-c",
		`i=0; while [ $i -lt 400 ]; do i=$((i+1)); printf '\033[32mok\033[0m test %d\n' $i; done; printf '\033[31mFAIL\033[0m the last test\n'; exit 1`}})
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(0, r.Job, browserWait)
	nodetest.WaitFor(t, browserWait, "the task's log sealed on two nodes", func() (bool, string) {
		holders := 0
		m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
			if tk := s.Tasks[r.Task]; tk != nil && len(tk.Logs) > 0 {
				if b := s.Blobs[tk.Logs[0].Hash]; b != nil {
					holders = len(b.Holders)
				}
			}
		})
		return holders >= 2, fmt.Sprintf("%d holders", holders)
	})
	m.Nodes[2].Kill()

	b := startBrowser(t, m.Secret.ClusterToken())
	b.navigate(m.Nodes[0].URL() + "/tasks/" + r.Task)
	b.until("the dead node's log, first to last line", `document.getElementById("log").textContent.includes("ok test 1\n") && document.getElementById("log").textContent.includes("FAIL the last test")`)
	b.until("its colours", `document.querySelector("#log span.f32") !== null && document.querySelector("#log span.f31") !== null`)
	b.until("the task failed", `document.querySelector("#task .badge").textContent === "failed"`)
	b.screenshot("browser-dead-node-log.png")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
