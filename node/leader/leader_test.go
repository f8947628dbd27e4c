package leader

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/nodetest/fakeledger"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// Each duty is tested against a fake ledger (a raftfsm.State the test
// feeds), a writer that applies to it as the dispatcher would, a fake
// membership and a manual clock: no Raft, no gossip.

var epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// members is a membership the test sets.
type members struct {
	mu sync.Mutex
	ms []gossip.Member
	ch chan struct{}
}

func newMembers(names ...string) *members {
	m := &members{ch: make(chan struct{})}
	m.set(names...)
	return m
}

func (m *members) Members() []gossip.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ms)
}

func (m *members) Watch() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ch
}

// set replaces the members: "name" is healthy, "name!reason" unhealthy.
func (m *members) set(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ms = nil
	for _, n := range names {
		name, why, _ := strings.Cut(n, "!")
		m.ms = append(m.ms, gossip.Member{Name: name, Meta: gossip.Meta{Unhealthy: why}})
	}
	close(m.ch)
	m.ch = make(chan struct{})
}

// world is a ledger with its writer and a clock.
type world struct {
	t     *testing.T
	l     *fakeledger.Ledger
	w     *fakeledger.Writer
	clock *clock.Manual
}

func newWorld(t *testing.T) *world {
	l := fakeledger.New()
	c := clock.NewManual(epoch)
	return &world{t: t, l: l, w: &fakeledger.Writer{L: l, Clock: c}, clock: c}
}

func (w *world) ok(c raftfsm.Command) {
	w.t.Helper()
	if _, err := w.l.Apply(c); err != nil {
		w.t.Fatalf("apply %v: %v", c.Type, err)
	}
}

// job opens job j (deadline after its opening; 0: held, none) with root
// task id, timeout to.
func (w *world) job(j, id string, deadline, to time.Duration) {
	w.t.Helper()
	nj := &raftfsm.NewJob{}
	if deadline > 0 {
		nj.Deadline = w.clock.Now().Add(deadline)
	}
	w.ok(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{NewJob: nj, Job: j, Task: id, Topic: "build", Args: []string{"make"}, Timeout: to, At: w.clock.Now()}})
}

func (w *world) assign(id, node string) {
	w.t.Helper()
	w.ok(raftfsm.Command{Type: raftfsm.CmdAssign, Assign: &raftfsm.Assign{Items: []raftfsm.Assignment{{Task: id, Attempt: w.l.Task(id).Attempt, Node: node}}, At: w.clock.Now()}})
}

func (w *world) start(id string) {
	w.t.Helper()
	t := w.l.Task(id)
	w.ok(raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: id, Attempt: t.Attempt, Node: t.Node, At: w.clock.Now()}})
}

func (w *world) pass(id string) {
	w.t.Helper()
	t := w.l.Task(id)
	zero := 0
	w.ok(raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{Task: id, Attempt: t.Attempt, Node: t.Node, State: raftfsm.TaskPassed, ExitCode: &zero, At: w.clock.Now()}})
}

func (w *world) blob(hash string, job string) {
	w.t.Helper()
	w.ok(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: hash, Size: 1, Node: "n1", Job: job, At: w.clock.Now()}})
}

// describe renders commands compactly for got/want comparisons.
func describe(cmds []raftfsm.Command) []string {
	var out []string
	for _, c := range cmds {
		switch c.Type {
		case raftfsm.CmdCloseJob:
			out = append(out, "close "+c.CloseJob.Job+" "+c.CloseJob.Reason)
		case raftfsm.CmdTaskFinished:
			out = append(out, fmt.Sprintf("finish %s.%d %s", c.TaskFinished.Task, c.TaskFinished.Attempt, c.TaskFinished.State))
		case raftfsm.CmdRequeue:
			r := c.Requeue
			kind := "lost"
			if r.Infra {
				kind = "infra"
			}
			out = append(out, fmt.Sprintf("requeue %s.%d %s", r.Task, r.Attempt, kind))
		case raftfsm.CmdBatch:
			out = append(out, describe(c.Batch)...)
		default:
			out = append(out, c.Type.String())
		}
	}
	return out
}

func hash(c byte) string { return strings.Repeat(string(c), 64) }

func TestDeadlinesDue(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*world)
		live  []string
		after time.Duration // the clock moves on this much before the pass
		want  []string
		next  time.Duration // from the pass's now
	}{
		{name: "a job past its deadline closes, timed out",
			setup: func(w *world) { w.job("j1", "t1", time.Minute, 0) }, after: time.Minute,
			want: []string{"close j1 " + raftfsm.ReasonTimedOut}, next: time.Hour},
		{name: "a job before its deadline: look again at it",
			setup: func(w *world) { w.job("j1", "t1", time.Minute, 0) }, after: 20 * time.Second,
			next: 40 * time.Second},
		{name: "a held job has no deadline",
			setup: func(w *world) { w.job("j1", "t1", 0, 0) }, after: 48 * time.Hour, next: time.Hour},
		{name: "a task running past its timeout and the backstop on a live node times out",
			setup: func(w *world) {
				w.job("j1", "t1", 24*time.Hour, time.Minute)
				w.assign("t1", "n1")
				w.start("t1")
			}, live: []string{"n1"}, after: time.Minute + Backstop,
			want: []string{"finish t1.1 timed_out"}, next: time.Hour}, // it looks again at least hourly
		{name: "within the backstop: look again when it runs out",
			setup: func(w *world) {
				w.job("j1", "t1", 24*time.Hour, time.Minute)
				w.assign("t1", "n1")
				w.start("t1")
			}, live: []string{"n1"}, after: time.Minute, next: Backstop},
		{name: "a dead node's task is not timed out (Loss requeues it)",
			setup: func(w *world) {
				w.job("j1", "t1", 24*time.Hour, time.Minute)
				w.assign("t1", "n1")
				w.start("t1")
			}, after: 2 * time.Hour, next: time.Hour},
		{name: "a task without a timeout is left to its node",
			setup: func(w *world) {
				w.job("j1", "t1", 24*time.Hour, 0)
				w.assign("t1", "n1")
				w.start("t1")
			}, live: []string{"n1"}, after: 2 * time.Hour, next: time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			c.setup(w)
			w.clock.Advance(c.after)
			d := Deadlines{Ledger: w.l, Writer: w.w, Members: newMembers(c.live...), Clock: w.clock, Log: quiet}
			now := w.clock.Now()
			cmds, next := d.due(now)
			if got := describe(cmds); !slices.Equal(got, c.want) {
				t.Errorf("commands: got %v, want %v", got, c.want)
			}
			if got := next.Sub(now); got != c.next {
				t.Errorf("next look: got %s from now, want %s", got, c.next)
			}
		})
	}
}

// Run sleeps on the clock until the next deadline and closes the job then.
func TestDeadlinesRunWakesAtTheDeadline(t *testing.T) {
	w := newWorld(t)
	w.job("j1", "t1", time.Minute, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Deadlines{Ledger: w.l, Writer: w.w, Members: newMembers(), Clock: w.clock, Log: quiet}.Run(ctx)
	}()
	wait.For(t, 10*time.Second, "the job to close at its deadline", func() (bool, string) {
		w.clock.Advance(10 * time.Second) // fires the duty's timer once it waits
		j := w.l.Job("j1")
		return j.State == raftfsm.JobClosed, fmt.Sprintf("job %s at %s", j.State, w.clock.Now().Sub(epoch))
	})
	if got := w.l.Job("j1").ClosedAt.Sub(epoch); got < time.Minute {
		t.Errorf("closed %s after opening, want at or after its 1m deadline", got)
	}
	cancel()
	<-done
}

func TestLossDue(t *testing.T) {
	setup := func(w *world) {
		w.job("j1", "run", time.Hour, 0)
		w.assign("run", "n1")
		w.start("run")
		w.job("j2", "wait", time.Hour, 0)
		w.assign("wait", "n1")
		w.job("j3", "done", time.Hour, 0)
		w.assign("done", "n1")
		w.start("done")
		w.pass("done")
	}
	cases := []struct {
		name     string
		live     []string
		answers  []string // nodes that answer at their peer port
		want     []string
		answered []string
	}{
		{"a healthy node keeps its attempts", []string{"n1"}, nil, nil, nil},
		{"a dead node's attempts are requeued", []string{"n2"}, nil, []string{"requeue run.1 lost", "requeue wait.1 lost"}, nil},
		{"a node gossip dropped that answers keeps its attempts", []string{"n2"}, []string{"n1"}, nil, []string{"n1"}},
		{"a node that does not answer loses them, whoever else answers", []string{"n2"}, []string{"n2"}, []string{"requeue run.1 lost", "requeue wait.1 lost"}, nil},
		{"an unhealthy node's unstarted attempts go elsewhere as infra retries", []string{"n1!no space left on device"}, nil, []string{"requeue wait.1 infra"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			setup(w)
			l := Loss{Ledger: w.l, Writer: w.w, Members: newMembers(c.live...), Clock: w.clock, Log: quiet, MaxAttempts: 3, MaxInfra: 2,
				Answers: func(_ context.Context, node string) bool { return slices.Contains(c.answers, node) }}
			cmds, answered := l.due(context.Background())
			got := describe(cmds)
			slices.Sort(got)
			if !slices.Equal(got, c.want) || !slices.Equal(answered, c.answered) {
				t.Errorf("requeues: got %v (answered %v), want %v (answered %v)", got, answered, c.want, c.answered)
			}
		})
	}
}

// Run requeues a dead node's attempts as soon as gossip drops it, and
// tries again when a write's fate is unknown.
func TestLossRunRequeuesWhenANodeDies(t *testing.T) {
	w := newWorld(t)
	w.job("j1", "t1", time.Hour, 0)
	w.assign("t1", "n1")
	w.start("t1")
	m := newMembers("n1", "n2")
	w.w.FailNext(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loss{Ledger: w.l, Writer: w.w, Members: m, Clock: w.clock, Log: quiet, MaxAttempts: 3, MaxInfra: 2}.Run(ctx)
	}()
	m.set("n2") // n1 dies
	wait.For(t, 10*time.Second, "n1's attempt to be requeued", func() (bool, string) {
		tk := w.l.Task("t1")
		return tk.Attempt == 2 && tk.State == raftfsm.TaskQueued, fmt.Sprintf("attempt %d %s", tk.Attempt, tk.State)
	})
	if got := len(w.w.Commands()); got != 2 {
		t.Errorf("submits: got %d, want 2 (one failed, one applied)", got)
	}
	cancel()
	<-done
}

func TestRetentionDue(t *testing.T) {
	const ret, hist = 7 * 24 * time.Hour, 30 * 24 * time.Hour
	w := newWorld(t)
	w.job("old", "t1", time.Hour, 0)
	w.blob(hash('a'), "old")
	w.assign("t1", "n1")
	w.start("t1")
	w.pass("t1") // closes "old" now
	w.blob(hash('c'), "")
	w.blob(hash('b'), "")
	w.job("open", "t2", 365*24*time.Hour, 0)
	r := Retention{Ledger: w.l, Writer: w.w, Clock: w.clock, Log: quiet, BlobRetention: ret, JobHistory: hist}

	steps := []struct {
		name       string
		after      time.Duration
		jobs, blob []string
		forget     []string
		next       time.Duration
	}{
		{name: "nothing is due at first: it looks again within the hour", next: time.Hour},
		{name: "a closed job and the unreferenced blobs expire after the retention", after: ret,
			jobs: []string{"old"}, blob: []string{hash('b'), hash('c')}, next: time.Hour},
	}
	for _, s := range steps {
		w.clock.Advance(s.after)
		now := w.clock.Now()
		ex, next := r.due(now)
		if !slices.Equal(ex.Jobs, s.jobs) || !slices.Equal(ex.Blobs, s.blob) || !slices.Equal(ex.Forget, s.forget) {
			t.Errorf("%s: got jobs %v blobs %v forget %v, want %v %v %v", s.name, ex.Jobs, ex.Blobs, ex.Forget, s.jobs, s.blob, s.forget)
		}
		if got := next.Sub(now); got != s.next {
			t.Errorf("%s: next look %s from now, want %s", s.name, got, s.next)
		}
		if len(ex.Jobs)+len(ex.Blobs) > 0 {
			if _, err := w.w.Submit(context.Background(), raftfsm.Command{Type: raftfsm.CmdExpire, Expire: ex}); err != nil {
				t.Fatalf("%s: expire: %v", s.name, err)
			}
		}
	}
	// The expired job's blob is unreferenced now: it goes a retention
	// after it was made; the job itself leaves after its history.
	w.clock.Advance(hist - ret)
	now := w.clock.Now()
	ex, _ := r.due(now)
	if want := []string{"old"}; !slices.Equal(ex.Forget, want) {
		t.Errorf("after the history: forget %v, want %v", ex.Forget, want)
	}
	if want := []string{hash('a')}; !slices.Equal(ex.Blobs, want) {
		t.Errorf("after the history: blobs %v, want %v", ex.Blobs, want)
	}
}

// Queue kicks the dispatcher while something waits, at every change of
// the ledger or the membership (a node that serves its topic may have
// joined).
func TestQueueKicks(t *testing.T) {
	w := newWorld(t)
	m := newMembers("n1")
	kicks := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Queue{Ledger: w.l, Members: m, Kick: func() { kicks <- struct{}{} }}.Run(ctx)
	}()
	got := func(what string) {
		t.Helper()
		select {
		case <-kicks:
		case <-time.After(wait.Scale(10 * time.Second)):
			t.Fatalf("no kick after %s", what)
		}
	}
	w.job("j1", "t1", time.Hour, 0)
	got("a spawn queued a task")
	m.set("n1", "n2")
	got("a node joined while a task waits")
	cancel()
	<-done
}

// A closed job's sealed logs expire LogRetention after it closed, apart
// from its artifacts, and are forgotten with the job.
func TestRetentionExpiresSealedLogs(t *testing.T) {
	const ret, logs, hist = 7 * 24 * time.Hour, 30 * 24 * time.Hour, 30 * 24 * time.Hour
	w := newWorld(t)
	w.job("j1", "t1", time.Hour, 0)
	w.assign("t1", "n1")
	w.start("t1")
	w.pass("t1")
	w.ok(raftfsm.Command{Type: raftfsm.CmdLogSealed, LogSealed: &raftfsm.LogSealed{Task: "t1", At: w.clock.Now(),
		Log: raftfsm.LogRef{Attempt: 1, Hash: hash('f'), Size: 10, Bytes: 30, Lines: 2, Node: "n1"}}})
	r := Retention{Ledger: w.l, Writer: w.w, Clock: w.clock, Log: quiet, BlobRetention: ret, LogRetention: logs, JobHistory: hist}
	expire := func(what string) *raftfsm.Expire {
		t.Helper()
		ex, _ := r.due(w.clock.Now())
		if len(ex.Jobs)+len(ex.Blobs)+len(ex.Logs)+len(ex.Forget) > 0 {
			if _, err := w.w.Submit(context.Background(), raftfsm.Command{Type: raftfsm.CmdExpire, Expire: ex}); err != nil {
				t.Fatalf("%s: expire: %v", what, err)
			}
		}
		return ex
	}
	w.clock.Advance(ret)
	if ex := expire("after the blob retention"); len(ex.Logs) != 0 || len(ex.Blobs) != 0 || !slices.Equal(ex.Jobs, []string{"j1"}) {
		t.Errorf("after the blob retention: got jobs %v logs %v blobs %v, want j1's artifacts only", ex.Jobs, ex.Logs, ex.Blobs)
	}
	w.clock.Advance(logs - ret)
	ex := expire("after the log retention")
	if !slices.Equal(ex.Logs, []string{"j1"}) || !slices.Equal(ex.Forget, []string{"j1"}) || !slices.Equal(ex.Blobs, []string{hash('f')}) {
		t.Errorf("after the log retention: got logs %v forget %v blobs %v, want j1's logs expired, its log's blob forgotten with them and the job forgotten", ex.Logs, ex.Forget, ex.Blobs)
	}
	w.l.Read(func(s *raftfsm.State, _ uint64) {
		if b := s.Blobs[hash('f')]; b != nil {
			t.Errorf("the expired log's blob is still in the ledger: %+v", b)
		}
	})
	if ex := expire("then"); len(ex.Blobs)+len(ex.Logs)+len(ex.Forget)+len(ex.Jobs) != 0 {
		t.Errorf("then: got %+v, want nothing left to expire", ex)
	}
}

// A sealed log's blob is forgotten as soon as its job's logs expire, long
// before the blob retention would forget an unreferenced blob; one that is
// also an artifact of its job (in retention) stays.
func TestRetentionForgetsExpiredLogBlobsAtOnce(t *testing.T) {
	const ret, logs = 30 * 24 * time.Hour, time.Hour
	w := newWorld(t)
	for _, id := range []string{"1", "2"} {
		w.job("j"+id, "t"+id, time.Hour, 0)
		w.assign("t"+id, "n1")
		w.start("t" + id)
		if id == "2" {
			w.blob(hash('e'), "j2") // j2's artifact, and t2's sealed log (the same bytes)
		}
		w.pass("t" + id)
	}
	for task, h := range map[string]string{"t1": hash('d'), "t2": hash('e')} {
		w.ok(raftfsm.Command{Type: raftfsm.CmdLogSealed, LogSealed: &raftfsm.LogSealed{Task: task, At: w.clock.Now(),
			Log: raftfsm.LogRef{Attempt: 1, Hash: h, Size: 1, Bytes: 30, Lines: 2, Node: "n1"}}})
	}
	r := Retention{Ledger: w.l, Writer: w.w, Clock: w.clock, Log: quiet, BlobRetention: ret, LogRetention: logs, JobHistory: ret}
	w.clock.Advance(logs)
	ex, _ := r.due(w.clock.Now())
	if !slices.Equal(ex.Logs, []string{"j1", "j2"}) {
		t.Errorf("logs expired: got %v, want j1 and j2", ex.Logs)
	}
	if _, err := w.w.Submit(context.Background(), raftfsm.Command{Type: raftfsm.CmdExpire, Expire: ex}); err != nil {
		t.Fatal(err)
	}
	for h, kept := range map[string]bool{hash('d'): false, hash('e'): true} {
		var in bool
		w.l.Read(func(s *raftfsm.State, _ uint64) { _, in = s.Blobs[h] })
		if in != kept {
			t.Errorf("blob %s after the log retention: in the ledger %v, want %v", h[:8], in, kept)
		}
	}
}

// Run leaves the attempts of a node gossip dropped while it answers at its
// peer port, asks again, and requeues them once it stops answering.
func TestLossRunSparesANodeThatAnswers(t *testing.T) {
	w := newWorld(t)
	w.job("j1", "t1", time.Hour, 0)
	w.assign("t1", "n1")
	w.start("t1")
	m := newMembers("n1", "n2")
	var answering atomic.Bool
	var asked atomic.Int32
	answering.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loss{Ledger: w.l, Writer: w.w, Members: m, Clock: w.clock, Log: quiet, MaxAttempts: 3, MaxInfra: 2,
			Answers: func(_ context.Context, node string) bool { asked.Add(1); return node == "n1" && answering.Load() }}.Run(ctx)
	}()
	m.set("n2") // gossip drops n1, which still answers
	wait.For(t, 10*time.Second, "n1 asked twice (asked again while gossip lists it as gone)", func() (bool, string) {
		return asked.Load() >= 2, fmt.Sprintf("asked %d times", asked.Load())
	})
	if tk := w.l.Task("t1"); tk.Attempt != 1 || tk.State != raftfsm.TaskRunning {
		t.Fatalf("while n1 answers: got attempt %d %s, want attempt 1 still running", tk.Attempt, tk.State)
	}
	answering.Store(false)
	wait.For(t, 10*time.Second, "n1's attempt requeued once it stopped answering", func() (bool, string) {
		tk := w.l.Task("t1")
		return tk.Attempt == 2 && tk.State == raftfsm.TaskQueued, fmt.Sprintf("attempt %d %s", tk.Attempt, tk.State)
	})
	cancel()
	<-done
}
