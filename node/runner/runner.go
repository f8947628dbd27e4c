package runner

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// Ledger is the local replica, as the runner reads it.
type Ledger interface {
	Read(fn func(s *raftfsm.State, index uint64))
	Watch() (uint64, <-chan struct{})
}

// Reporter delivers one report to the leader, once. It returns nil when
// the ledger applied it, an error wrapping ErrRefused when the ledger
// declined it for good (a stale attempt, a task already settled), and any
// other error when it may be tried again.
type Reporter interface {
	Report(ctx context.Context, r api.Report) error
}

// ErrRefused marks a report the ledger declined for good: retrying cannot
// help.
var ErrRefused = errors.New("refused by the ledger")

// Host is what the runner asks of its node.
type Host interface {
	// Topic is how the node serves a topic now (its offer may change).
	Topic(name string) (topic.Topic, bool)
	// Backend returns what runs a topic's tasks, ready for one of them
	// (a container network's gateway listened on, for TaskAPI).
	Backend(ctx context.Context, t topic.Topic) (executor.Backend, error)
	// TaskAPI is the base URL of the node's API as a task of the topic
	// reaches it.
	TaskAPI(topic string) string
	// Unhealthy says why the node takes no new work ("" when it does).
	Unhealthy() string
	// NoteWriteError tells the node that a write failed (its disk may be
	// full); nil is ignored.
	NoteWriteError(err error)
	// StreamLog is called once an attempt's log is made: the node copies
	// the output to other nodes as it is written; stop ends that (after
	// the last write, before KeepLog).
	StreamLog(t *raftfsm.Task, l *tasklog.Log) (stop func())
	// KeepLog is called once an attempt is over and its log finished:
	// the node keeps it beyond this machine (sealed as a blob, recorded
	// in the ledger). It may take a while; the attempt's goroutine waits.
	KeepLog(t *raftfsm.Task, l *tasklog.Log)
}

// Metrics observes attempts (node/metrics; nil-safe there).
type Metrics interface {
	TaskStarted(topic string, created, assigned, started time.Time)
	TaskRan(topic string, d time.Duration)
	TaskFinished(topic, outcome string)
}

// Sources checks out a job's commit into a workspace (node/checkout).
type Sources interface {
	Checkout(ctx context.Context, repo, sha, branch, dir string) error
	// CheckoutStandalone makes a checkout that needs nothing of the node's
	// data directory (for a task user who cannot read it).
	CheckoutStandalone(ctx context.Context, repo, sha, branch, dir string) error
	// MirrorPath is where the repository's objects are, for the workspace
	// to borrow read-only.
	MirrorPath(repo string) string
}

// Config is what a Runner needs.
type Config struct {
	Name        string        // the node's name: the ledger assigns attempts to it
	WorkDir     string        // workspaces, one per attempt: WorkDir/TASK.ATTEMPT
	TaskTimeout time.Duration // when neither the task nor its topic sets one
	Grace       time.Duration // between the stop signal and the kill
	TaskUser    string        // host tasks run as this user ("": the node's)
	Binary      string        // ourci-node, first on a task's PATH ("": none)
	Secret      auth.Secret
	Clock       clock.Clock
	Log         *slog.Logger

	Ledger   Ledger
	Reporter Reporter
	Host     Host
	Metrics  Metrics
	Sources  Sources
	Logs     *tasklog.Store
	Records  *Records // run records (records.go)
	// Previous holds what a previous life of this node started (task →
	// attempt, from its run records): handed back, never run again.
	Previous map[string]int
}

// Runner starts the attempts the local replica assigns to this node and
// stops those the ledger takes away.
type Runner struct {
	cfg Config
	ctx context.Context
	log *slog.Logger

	mu        sync.Mutex
	local     map[string]*attempt // task ID → the attempt this process runs or ran
	abandoned map[string]int      // task ID → attempt of a previous life being handed back
	previous  map[string]int      // task ID → attempt a previous life of this node started
	wg        sync.WaitGroup
	// closing: the node shuts down; nothing new starts (what it hands back
	// must not come straight back to it).
	closing atomic.Bool
	// startMu orders starts and Stop: an attempt's process starts (and is
	// logged "task started") under its read lock with closing false; Stop
	// sets closing under its write lock, so once Stop returned no process
	// starts, and every start before it is logged before Stop's line.
	startMu sync.RWMutex
}

// attempt is one attempt this node started. It stays in Runner.local after
// its process ended until the ledger shows the attempt settled, so that the
// runner can tell its own finished work from work a previous life abandoned.
type attempt struct {
	task     *raftfsm.Task
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopped  chan struct{} // closed when the ledger took the attempt away
	exited   chan struct{} // closed when the process and its reports are done
}

func (a *attempt) stop() {
	a.stopOnce.Do(func() { close(a.stopped) })
}

// New returns a runner for the node whose lifetime is ctx: when ctx ends,
// every attempt stops.
func New(ctx context.Context, cfg Config) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Records == nil {
		cfg.Records = &Records{} // no records kept
	}
	return &Runner{cfg: cfg, ctx: ctx, log: cfg.Log, local: map[string]*attempt{}, abandoned: map[string]int{}, previous: cfg.Previous}
}

// Run starts nothing before ready is closed (the replica caught up with
// the mesh), then reconciles local processes with the replica at every
// change, until the node stops.
func (r *Runner) Run(ready <-chan struct{}) {
	select {
	case <-r.ctx.Done():
		return
	case <-ready:
	}
	for {
		_, ch := r.cfg.Ledger.Watch()
		r.scan()
		select {
		case <-r.ctx.Done():
			return
		case <-ch:
		}
	}
}

// scan reconciles local processes with the replica.
func (r *Runner) scan() {
	name := r.cfg.Name
	var mine []*raftfsm.Task
	current := map[string]*raftfsm.Task{}
	r.mu.Lock()
	ids := make([]string, 0, len(r.local))
	for id := range r.local {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	var jobs map[string]raftfsm.Job
	origins := map[string]topic.Origin{}
	r.cfg.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		jobs = map[string]raftfsm.Job{}
		for _, t := range s.Active(name) {
			mine = append(mine, t.Clone())
			jobs[t.Job] = *s.Jobs[t.Job]
			origins[t.ID] = topic.OriginOf(s, t)
		}
		for _, id := range ids {
			if t := s.Tasks[id]; t != nil {
				current[id] = t.Clone()
			}
		}
	})

	r.mu.Lock()
	defer r.mu.Unlock()
	// Stop or forget attempts the ledger no longer gives us.
	for id, a := range r.local {
		t := current[id]
		if t != nil && t.Attempt == a.task.Attempt && t.Node == name && !t.State.Terminal() {
			continue
		}
		a.stop()
		select {
		case <-a.exited:
			delete(r.local, id)
		default:
		}
	}
	// An unhealthy node starts nothing: the leader hands what it was given
	// to other nodes.
	sick := r.cfg.Host.Unhealthy() != "" || r.closing.Load()
	for _, t := range mine {
		if a := r.local[t.ID]; a != nil && a.task.Attempt == t.Attempt {
			continue
		}
		if t.State == raftfsm.TaskRunning || r.previous[t.ID] == t.Attempt {
			// Started, yet not by this process: a previous life of this
			// node did (the ledger says running, or its run record says
			// so), and its process is gone. It is handed back, never run
			// twice. (This life adds an attempt to local before it starts.)
			if r.abandoned[t.ID] != t.Attempt {
				r.abandoned[t.ID] = t.Attempt
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					r.Report(api.Report{Kind: api.ReportAbandoned, Task: t.ID, Attempt: t.Attempt, Node: name, Error: "its node restarted during the attempt"})
				}()
			}
			continue
		}
		if sick {
			continue
		}
		r.start(t, jobs[t.Job], origins[t.ID])
	}
	for id, att := range r.abandoned {
		if !slices.ContainsFunc(mine, func(t *raftfsm.Task) bool { return t.ID == id && t.Attempt == att }) {
			delete(r.abandoned, id)
		}
	}
}

// Disown hands back, at the first scan, every attempt the ledger gives this
// node's name: with a new data directory, they were given to an earlier
// incarnation of the name, which may have started them. The node calls it
// before ready is closed, so before the runner takes any work.
func (r *Runner) Disown() {
	name := r.cfg.Name
	r.cfg.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range s.Active(name) {
			if r.previous == nil {
				r.previous = map[string]int{}
			}
			r.previous[t.ID] = t.Attempt
		}
	})
}

func (r *Runner) start(t *raftfsm.Task, job raftfsm.Job, o topic.Origin) {
	ctx, cancel := context.WithCancel(r.ctx)
	a := &attempt{task: t, ctx: ctx, cancel: cancel, stopped: make(chan struct{}), exited: make(chan struct{})}
	r.local[t.ID] = a
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(a.exited)
		defer cancel()
		r.run(a, job, o) // the next scan forgets the attempt once the ledger settles it
	}()
}

// Holds reports whether this process runs the attempt or has not done
// with it yet: its log is the runner's until KeepLog returned.
func (r *Runner) Holds(task string, attempt int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.local[task]
	if a == nil || a.task.Attempt != attempt {
		return false
	}
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// Report delivers a report to the leader, retrying until it is applied or
// refused (the error then wraps ErrRefused), or the node stops (nil).
func (r *Runner) Report(rep api.Report) error {
	backoff := 10 * time.Millisecond
	for {
		err := r.cfg.Reporter.Report(r.ctx, rep)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			r.log.Info("report refused", "task", rep.Task, "attempt", rep.Attempt, "kind", rep.Kind, "err", err)
			return err
		}
		if r.ctx.Err() != nil {
			return nil
		}
		r.log.Debug("report not delivered, retrying", "task", rep.Task, "err", err)
		select {
		case <-r.ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// Stop makes the runner start nothing more: the node is going down, and
// what it hands back must not come straight back to it.
func (r *Runner) Stop() {
	r.startMu.Lock()
	first := r.closing.CompareAndSwap(false, true)
	r.startMu.Unlock()
	if first {
		r.log.Info("runner: starting no new attempts")
	}
}

// Shutdown stops every running attempt and hands it back to the mesh as
// abandoned, so another node runs the next attempt; it waits at most wait
// for the processes to end and the reports to land.
func (r *Runner) Shutdown(wait time.Duration) {
	r.Stop()
	r.mu.Lock()
	var running []*attempt
	for _, a := range r.local {
		select {
		case <-a.exited:
		default:
			running = append(running, a)
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, a := range running {
		a.stop()
	}
	for _, a := range running {
		select {
		case <-a.exited:
		case <-ctx.Done():
		}
		rep := api.Report{Kind: api.ReportAbandoned, Task: a.task.ID, Attempt: a.task.Attempt, Node: r.cfg.Name, Error: "its node shut down during the attempt"}
		if err := r.cfg.Reporter.Report(ctx, rep); err != nil && !errors.Is(err, ErrRefused) {
			r.log.Warn("could not hand back task", "task", a.task.ID, "err", err)
		}
	}
}

// Wait waits for every attempt and report goroutine to end (after the
// node's context ended or Shutdown).
func (r *Runner) Wait() { r.wg.Wait() }

// Kill stops every process without reporting (a simulated crash), and
// waits for them.
func (r *Runner) Kill() {
	r.mu.Lock()
	for _, a := range r.local {
		a.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
