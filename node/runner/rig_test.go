package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest/fakeledger"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// The runner's tests run it against fakes of everything around it: a
// ledger that is a plain raftfsm.State (node/nodetest/fakeledger), a reporter that applies reports to
// that state as the leader would (so refusals are the ledger's own), a
// host with fixed topics, the fake executor and a manual clock. Nothing
// here starts Raft, gossip or a process.

var epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// fakeReporter is the write path as the leader runs it: each report
// becomes a ledger command, stamped by the test's clock, and a refusal
// wraps ErrRefused.
type fakeReporter struct {
	l     *fakeledger.Ledger
	clock clock.Clock

	mu        sync.Mutex
	delivered []api.Report
	transient int                // this many calls fail as if the leader were unreachable
	before    func(r api.Report) // called before a report is applied (outside mu)
	gate      chan struct{}      // when set, Report waits for it to be closed
}

func (f *fakeReporter) Report(ctx context.Context, r api.Report) error {
	f.mu.Lock()
	gate, before := f.gate, f.before
	if f.transient > 0 {
		f.transient--
		f.mu.Unlock()
		return errors.New("leader unreachable")
	}
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if before != nil {
		before(r)
	}
	now := f.clock.Now()
	var c raftfsm.Command
	switch r.Kind {
	case api.ReportStarted:
		c = raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: r.Task, Attempt: r.Attempt, Node: r.Node, At: now}}
	case api.ReportFinished:
		c = raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{Task: r.Task, Attempt: r.Attempt, Node: r.Node, State: r.State, ExitCode: r.ExitCode, Error: r.Error, MaxInfra: 2, At: now}}
	case api.ReportAbandoned:
		c = raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{Task: r.Task, Attempt: r.Attempt, Reason: r.Error, MaxAttempts: 3, At: now}}
	default:
		return fmt.Errorf("%w: report kind %q", ErrRefused, r.Kind)
	}
	if _, err := f.l.Apply(c); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, r)
	f.mu.Unlock()
	return nil
}

// kinds lists the delivered reports of a task as "kind" or "kind:state".
func (f *fakeReporter) kinds(task string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.delivered {
		if r.Task != task {
			continue
		}
		k := string(r.Kind)
		if r.State != "" {
			k += ":" + string(r.State)
		}
		out = append(out, k)
	}
	return out
}

// fakeHost serves fixed topics through one fake executor.
type fakeHost struct {
	topics map[string]topic.Topic
	exec   *executor.Fake

	mu          sync.Mutex
	unhealthy   string
	backendErr  error
	writeErrors []error
	kept        []string      // TASK.ATTEMPT of every log handed to KeepLog
	keeping     chan struct{} // if set, KeepLog returns only once it is closed
	// backendAsked, if set, gets a value when an attempt asks for its
	// backend, which is given only once backendGate (if set) is closed.
	backendAsked chan struct{}
	backendGate  chan struct{}
}

func (h *fakeHost) Topic(name string) (topic.Topic, bool) {
	t, ok := h.topics[name]
	return t, ok
}

func (h *fakeHost) Backend(ctx context.Context, t topic.Topic) (executor.Backend, error) {
	if h.backendAsked != nil {
		h.backendAsked <- struct{}{}
	}
	if h.backendGate != nil {
		<-h.backendGate
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.backendErr != nil {
		return nil, h.backendErr
	}
	return executor.Only(h.exec), nil
}

func (h *fakeHost) TaskAPI(string) string { return "http://127.0.0.1:7380" }

func (h *fakeHost) StreamLog(*raftfsm.Task, *tasklog.Log) func() { return func() {} }

func (h *fakeHost) KeepLog(t *raftfsm.Task, l *tasklog.Log) {
	h.mu.Lock()
	h.kept = append(h.kept, fmt.Sprintf("%s.%d", t.ID, t.Attempt))
	gate := h.keeping
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (h *fakeHost) Unhealthy() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unhealthy
}

func (h *fakeHost) NoteWriteError(err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writeErrors = append(h.writeErrors, err)
}

type nopMetrics struct{}

func (nopMetrics) TaskStarted(string, time.Time, time.Time, time.Time) {}
func (nopMetrics) TaskRan(string, time.Duration)                       {}
func (nopMetrics) TaskFinished(string, string)                         {}

// noSources has no repository: every checkout fails.
type noSources struct{}

func (noSources) Checkout(_ context.Context, repo, _, _, _ string) error {
	return fmt.Errorf("checkout: %s: repository not found", repo)
}
func (s noSources) CheckoutStandalone(ctx context.Context, repo, sha, branch, dir string) error {
	return s.Checkout(ctx, repo, sha, branch, dir)
}
func (noSources) MirrorPath(string) string { return "/nonexistent" }

// rig is one runner, for node "n1", and its fakes.
type rig struct {
	t      *testing.T
	ledger *fakeledger.Ledger
	rep    *fakeReporter
	host   *fakeHost
	exec   *executor.Fake
	clock  *clock.Manual
	logs   *tasklog.Store
	dirs   struct{ work, run string }
	r      *Runner
	cancel context.CancelFunc // ends the node's lifetime: every attempt stops
	ready  chan struct{}
	secret auth.Secret
}

// newRig makes a runner with the topics given (by default "build", a
// host topic, and "img", a Docker-like topic of the fake executor that
// needs an image). Its loop does not run until run is called.
func newRig(t *testing.T, configure func(*Config)) *rig {
	t.Helper()
	secret := auth.NewSecret()
	g := &rig{t: t, ledger: fakeledger.New(), exec: executor.NewFake(), clock: clock.NewManual(epoch), ready: make(chan struct{}), secret: secret}
	g.rep = &fakeReporter{l: g.ledger, clock: g.clock}
	g.host = &fakeHost{exec: g.exec, topics: map[string]topic.Topic{
		"build": {Name: "build"},
		"img":   {Name: "img", Executor: executor.KindDocker},
	}}
	base := t.TempDir()
	g.dirs.work, g.dirs.run = filepath.Join(base, "work"), filepath.Join(base, "run")
	g.logs = tasklog.New(filepath.Join(base, "logs"), 0)
	cfg := Config{
		Name: "n1", WorkDir: g.dirs.work, TaskTimeout: time.Hour, Grace: time.Second,
		Secret: secret, Clock: g.clock, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ledger: g.ledger, Reporter: g.rep, Host: g.host, Metrics: nopMetrics{}, Sources: noSources{},
		Logs: g.logs, Records: NewRecords(g.dirs.run),
	}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.r, g.cancel = New(ctx, cfg), cancel
	t.Cleanup(func() {
		cancel()
		for _, p := range g.exec.Procs() {
			p.Finish(executor.ExitSIGKILL)
		}
		g.r.Wait()
	})
	return g
}

// run starts the runner's loop, its replica caught up.
func (g *rig) run() {
	done := make(chan struct{})
	go func() { defer close(done); g.r.Run(g.ready) }()
	close(g.ready)
	g.t.Cleanup(func() { g.cancel(); <-done }) // before newRig's cleanup: Cleanups run last first
}

// spawn opens job j with its root task id on topic, assigned to node
// (none: queued) now.
func (g *rig) spawn(j, id, tp string, edit func(*raftfsm.Spawn), node string) {
	g.t.Helper()
	sp := &raftfsm.Spawn{
		NewJob: &raftfsm.NewJob{Deadline: g.clock.Now().Add(time.Hour)},
		Job:    j, Task: id, Topic: tp, Args: []string{"make", id}, At: g.clock.Now(),
	}
	if edit != nil {
		edit(sp)
	}
	g.ok(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp})
	if node != "" {
		g.assign(id, 1, node)
	}
}

func (g *rig) assign(id string, attempt int, node string) {
	g.t.Helper()
	g.ok(raftfsm.Command{Type: raftfsm.CmdAssign, Assign: &raftfsm.Assign{Items: []raftfsm.Assignment{{Task: id, Attempt: attempt, Node: node}}, At: g.clock.Now()}})
}

func (g *rig) ok(c raftfsm.Command) {
	g.t.Helper()
	if _, err := g.ledger.Apply(c); err != nil {
		g.t.Fatalf("apply %v: %v", c.Type, err)
	}
}

// proc waits for the i-th started process.
func (g *rig) proc(i int) *executor.FakeProcess {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait.Scale(10*time.Second))
	defer cancel()
	p, err := g.exec.Await(ctx, i)
	if err != nil {
		g.t.Fatalf("process %d: %v", i, err)
	}
	return p
}

// settled waits for the task's attempt to reach state.
func (g *rig) settled(id string, attempt int, state raftfsm.TaskState) raftfsm.Task {
	g.t.Helper()
	var got raftfsm.Task
	wait.For(g.t, 10*time.Second, fmt.Sprintf("task %s attempt %d to be %s", id, attempt, state), func() (bool, string) {
		got = g.ledger.Task(id)
		return got.Attempt == attempt && got.State == state, fmt.Sprintf("it is attempt %d, %s (%s)", got.Attempt, got.State, got.Error)
	})
	return got
}

// log is the attempt's whole log as this node holds it.
func (g *rig) log(id string, attempt int) string {
	g.t.Helper()
	var b bytes.Buffer
	if err := g.logs.Stream(context.Background(), &b, func() {}, id, attempt, false); err != nil {
		g.t.Fatalf("log of %s.%d: %v", id, attempt, err)
	}
	return b.String()
}

// workspaces lists what is left in the work directory.
func (g *rig) workspaces() []string {
	entries, _ := os.ReadDir(g.dirs.work)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// records lists the run records (spares left out).
func (g *rig) records() []string {
	entries, _ := os.ReadDir(g.dirs.run)
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "spare-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func envOf(p *executor.FakeProcess) map[string]string {
	out := map[string]string{}
	for _, kv := range p.Spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func equal(a, b []string) bool { return slices.Equal(a, b) }
