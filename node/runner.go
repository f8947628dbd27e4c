package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/mask"
	"github.com/ourci/ourci/raftfsm"
)

// The runner starts the attempts that the local replica assigns to this
// node and stops those the ledger takes away (job closed, task requeued).
// It learns its work only from its own replica: it waits on FSM changes,
// never polls the leader.
type runner struct {
	n *Node

	mu        sync.Mutex
	local     map[string]*attempt // task ID → the attempt this process runs or ran
	abandoned map[string]int      // task ID → attempt of a previous life being handed back
	previous  map[string]int      // task ID → attempt a previous life of this node started
	wg        sync.WaitGroup
	spares    spareFiles // emptied run records for reuse (orphans.go)
	// closing: the node shuts down; nothing new starts (what it hands back
	// must not come straight back to it).
	closing atomic.Bool
}

// attempt is one attempt this node started. It stays in runner.local after
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

func newRunner(n *Node) *runner {
	return &runner{n: n, local: map[string]*attempt{}, abandoned: map[string]int{}}
}

// loop starts nothing before the replica caught up with the mesh: a replica
// still re-applying its log shows long-finished tasks as assigned.
func (r *runner) loop() {
	select {
	case <-r.n.ctx.Done():
		return
	case <-r.n.ready:
	}
	for {
		_, ch := r.n.fsm.Watch()
		r.scan()
		select {
		case <-r.n.ctx.Done():
			return
		case <-ch:
		}
	}
}

// scan reconciles local processes with the replica.
func (r *runner) scan() {
	name := r.n.cfg.Name
	var mine []*raftfsm.Task
	current := map[string]*raftfsm.Task{}
	r.mu.Lock()
	ids := make([]string, 0, len(r.local))
	for id := range r.local {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	var jobs map[string]raftfsm.Job
	origins := map[string]origin{}
	r.n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		jobs = map[string]raftfsm.Job{}
		for _, t := range s.Active(name) {
			mine = append(mine, t.Clone())
			jobs[t.Job] = *s.Jobs[t.Job]
			origins[t.ID] = taskOrigin(s, t)
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
	// to other nodes (lossLoop).
	sick := r.n.Unhealthy() != "" || r.closing.Load()
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
					r.report(api.Report{Kind: api.ReportAbandoned, Task: t.ID, Attempt: t.Attempt, Node: name, Error: "its node restarted during the attempt"})
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

// disown hands back, at the first scan, every attempt the ledger gives this
// node's name: with a new data directory, they were given to an earlier
// incarnation of the name, which may have started them. It runs before the
// ready gate opens (markReady), so before the node takes any work.
func (r *runner) disown() {
	name := r.n.cfg.Name
	r.n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, t := range s.Active(name) {
			if r.previous == nil {
				r.previous = map[string]int{}
			}
			r.previous[t.ID] = t.Attempt
		}
	})
}

func (a *attempt) stop() {
	a.stopOnce.Do(func() { close(a.stopped) })
}

func (r *runner) start(t *raftfsm.Task, job raftfsm.Job, o origin) {
	ctx, cancel := context.WithCancel(r.n.ctx)
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

// run executes one attempt from start to its final report.
func (r *runner) run(a *attempt, job raftfsm.Job, o origin) {
	t, n := a.task, r.n
	log := n.log.With("task", t.ID, "job", t.Job, "attempt", t.Attempt)
	// This node decides what it runs: checked again here, against its own
	// offer (it may have changed since the leader chose it).
	topic, serves := n.offer.Load().topic(t.Topic)
	switch {
	case !serves:
		r.infraFailed(a, "refused", fmt.Errorf("%s no longer serves topic %s", n.cfg.Name, t.Topic))
		return
	case !admits(topic.accept(), o):
		log.Warn("refused a task this node does not accept", "origin", o.String(), "rules", topic.accept())
		r.infraFailed(a, "refused", fmt.Errorf("%s does not accept spawns into %s from %s (--topic-accept %s=%s)", n.cfg.Name, t.Topic, o, t.Topic, strings.Join(topic.accept(), ",")))
		return
	}
	out, err := n.logs.Create(t.ID, t.Attempt)
	if err != nil {
		r.infraFailed(a, "cannot make its log", err)
		return
	}
	defer out.Finish()
	if dropped := dropDeniedEnv(t, topic.EnvAllow); len(dropped) > 0 {
		out.Note("this node does not let a spawn set %s: dropped from the task's environment (--topic-env-allow %s=NAME allows one)", strings.Join(dropped, ", "), t.Topic)
	}

	workdir := filepath.Join(n.cfg.WorkDir, t.ID+"."+strconv.Itoa(t.Attempt))
	os.RemoveAll(workdir)
	if err := os.MkdirAll(workdir, 0o700); err != nil {
		out.Note("cannot make workspace: %v", err)
		r.infraFailed(a, "cannot make its workspace", err)
		return
	}
	defer os.RemoveAll(workdir)

	timeout := t.Timeout
	if timeout == 0 {
		timeout = topic.Timeout
	}
	if timeout == 0 {
		timeout = n.cfg.TaskTimeout
	}
	if err := n.prepareTopic(a.ctx, topic); err != nil { // the containers' way to this node
		out.Note("%v", err)
		r.infraFailed(a, "cannot reach its containers' network", err)
		return
	}
	env := r.env(t, job, workdir)
	// Masked in its log: its own credentials (its token, its BLOB_URL and
	// the capability in it) and the topic's secrets; any other OurCI
	// token the masker finds by its shape.
	values := []string{n.cfg.Secret.TaskToken(t.ID, t.Attempt), n.cfg.Secret.BlobToken(t.Job, t.ID, t.Attempt)}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == "OURCI_TOKEN" || k == "BLOB_URL" {
			values = append(values, v)
		}
	}
	for k, v := range topic.Secrets { // set last: a task's --env cannot replace them
		env = append(env, k+"="+v)
		values = append(values, v)
	}
	masked := mask.New(out, values)
	defer masked.Close()
	out.MaskNotes(masked.All) // the node's own lines name arguments, which may hold a token
	spec, err := taskSpec(t, topic, executor.Spec{
		Args: t.Args, Script: topic.Agent, Env: env, Dir: workdir,
		Output: masked, Grace: n.cfg.Grace,
	})
	if err != nil {
		out.Note("%v", err)
		r.finish(a, raftfsm.TaskFailed, nil, err.Error())
		return
	}
	if src := job.Source; src.Repo != "" && src.SHA != "" {
		start := time.Now()
		checkout := n.mirrors.Checkout
		if topic.describe().Shared && n.cfg.TaskUser != "" {
			checkout = n.mirrors.CheckoutStandalone // its task cannot read the mirrors in the data directory
		}
		if err := checkout(a.ctx, src.Repo, src.SHA, src.Branch, workdir); err != nil {
			out.Note("%v", err)
			r.infraFailed(a, "checkout failed", err)
			return
		}
		out.Note("checked out %s at %s in %s", src.Repo, src.SHA, time.Since(start).Round(time.Millisecond))
		// The workspace borrows the git objects of this job's mirror (and
		// only this job's) by absolute path: git in a container needs it.
		spec.ReadOnly = append(spec.ReadOnly, n.mirrors.MirrorPath(src.Repo))
	}
	out.Note("task %s attempt %d on %s: %s", t.ID, t.Attempt, n.cfg.Name, describe(topic, t))
	forget, err := n.markStarting(t.ID, t.Attempt)
	if err != nil {
		out.Note("%v", err)
		r.infraFailed(a, "cannot record its start", err)
		return
	}
	defer forget()
	b, err := n.backendFor(topic)
	if err != nil {
		out.Note("%v", err)
		r.infraFailed(a, "executor unavailable", err)
		return
	}
	// An assignment that is not fresh may be stale: this replica may be
	// applying old entries after a partition or a restart, and a later
	// entry may have given the attempt away already. Its start is then
	// fenced first: the ledger must accept it before anything runs. (A
	// fresh one starts at once and reports after: the dispatch fast path.)
	// Judged last thing before the start, so that a node frozen on the way
	// (SIGSTOP, a paused VM) rarely starts what it held too long; if it
	// froze between here and the start, the refused report stops it.
	fenced := n.cfg.Clock.Now().Sub(t.AssignedAt) > freshAssignment
	if fenced {
		if err := r.report(api.Report{Kind: api.ReportStarted, Task: t.ID, Attempt: t.Attempt, Node: n.cfg.Name}); err != nil || a.ctx.Err() != nil {
			out.Note("the ledger gave this attempt away before it started: not run")
			log.Info("a stale assignment was refused before it started", "err", err)
			return
		}
	}
	proc, err := b.Start(a.ctx, spec)
	if err != nil {
		out.Note("could not start: %v", err)
		log.Warn("task could not start", "err", err)
		r.infraFailed(a, "could not start", err)
		return
	}
	defer proc.Destroy()
	// metrics: wait for a node and spawn-to-start, on the ledger's clock;
	// run time on this process's monotonic clock.
	n.metrics.TaskStarted(t.Topic, t.CreatedAt, t.AssignedAt, n.cfg.Clock.Now())
	procStart := time.Now()
	if pp, ok := proc.(interface{ Pid() int }); ok {
		n.recordGroup(t.ID, t.Attempt, pp.Pid())
	}
	log.Info("task started")
	if !fenced {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// Refused: the ledger gave the attempt away meanwhile (this
			// node was unhealthy, or its replica lags): stop it even if
			// the replica has not shown that yet.
			if r.report(api.Report{Kind: api.ReportStarted, Task: t.ID, Attempt: t.Attempt, Node: n.cfg.Name}) != nil {
				a.stop()
			}
		}()
	}

	exited := make(chan struct{})
	var code int
	var werr error
	go func() {
		code, werr = proc.Wait()
		close(exited)
	}()
	timedOut, stopped, outFailed := false, false, false
	select {
	case <-exited:
	case <-out.Failed():
		// Its output cannot be written (a full disk): a log cut short must
		// never pass. Stop it and hand it to another node.
		outFailed = true
		proc.Stop()
		<-exited
	case <-n.cfg.Clock.After(timeout):
		timedOut = true
		out.Note("timed out after %s: stopping the process group", timeout)
		proc.Stop()
		<-exited
	case <-a.stopped:
		stopped = true
		out.Note("the ledger took this attempt away (job closed or task requeued): stopping")
		proc.Stop()
		<-exited
	case <-n.ctx.Done():
		stopped = true
		proc.Stop()
		<-exited
	}
	n.metrics.TaskRan(t.Topic, time.Since(procStart)) // metrics
	// Clean up (a container is removed) before the ledger hears of the end:
	// a closed job has nothing of its left running.
	if err := proc.Destroy(); err != nil {
		out.Note("cleanup: %v", err)
	}
	masked.Close() // what it held back, masked, before the closing notes
	log.Info("task ended", "exit_code", code, "timed_out", timedOut, "stopped", stopped, "output_failed", outFailed)
	if werr, written := out.WriteErr(); werr != nil && !stopped {
		n.noteWriteError(werr)
		log.Warn("task output could not be written: an infrastructure failure", "err", werr, "bytes", written)
		r.infraFailed(a, fmt.Sprintf("its output could not be written after %s (the log is cut there)", api.ByteSize(written)), werr)
		return
	} else if outFailed {
		return
	}
	if werr != nil {
		out.Note("wait failed: %v", werr)
		r.infraFailed(a, "waiting for it failed", werr)
		return
	}
	out.Note("exit code %d", code)
	switch {
	case stopped:
		// The ledger already settled this attempt (or the node is going
		// down and shutdown hands it back); nothing to report.
		n.metrics.TaskFinished(t.Topic, "stopped") // metrics
	case timedOut:
		r.finish(a, raftfsm.TaskTimedOut, &code, fmt.Sprintf("timed out after %s", timeout))
	case code == 0:
		r.finish(a, raftfsm.TaskPassed, &code, "")
	default:
		r.finish(a, raftfsm.TaskFailed, &code, "")
	}
}

// freshAssignment is how old (on the leader's clock, against this node's)
// an assignment may be and still start before its start is acknowledged.
const freshAssignment = 2 * time.Second

func describe(tp Topic, t *raftfsm.Task) string {
	d := tp.describe()
	switch {
	case d.Image:
		return fmt.Sprintf("%s image %s, command %q", d.Kind, t.Image, t.Args)
	case d.Script:
		return fmt.Sprintf("%s %s %q", d.Kind, tp.Agent, t.Args)
	case d.Kind == executor.KindHost:
		return fmt.Sprintf("host command %q", t.Args)
	}
	return fmt.Sprintf("%s command %q", d.Kind, t.Args)
}

func (r *runner) finish(a *attempt, st raftfsm.TaskState, code *int, msg string) {
	r.n.metrics.TaskFinished(a.task.Topic, string(st)) // metrics
	r.report(api.Report{Kind: api.ReportFinished, Task: a.task.ID, Attempt: a.task.Attempt, Node: r.n.cfg.Name, State: st, ExitCode: code, Error: msg})
}

// infraFailed reports that this node could not run the attempt: the ledger
// retries it on another node (bounded), and it never counts as the task's
// own failure.
func (r *runner) infraFailed(a *attempt, what string, err error) {
	r.n.noteWriteError(err)
	r.finish(a, raftfsm.TaskInfraFailed, nil, what+": "+errText(err))
}

// report delivers a report to the leader, retrying until it is applied or
// refused (the error then wraps errRefused), or the node stops.
func (r *runner) report(rep api.Report) error {
	backoff := 10 * time.Millisecond
	for {
		err := r.n.applyReport(r.n.ctx, rep)
		if err == nil {
			return nil
		}
		if errors.Is(err, errRefused) {
			r.n.log.Info("report refused", "task", rep.Task, "attempt", rep.Attempt, "kind", rep.Kind, "err", err)
			return err
		}
		if r.n.ctx.Err() != nil {
			return nil
		}
		r.n.log.Debug("report not delivered, retrying", "task", rep.Task, "err", err)
		select {
		case <-r.n.ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// shutdown stops every running attempt and hands it back to the mesh as
// abandoned, so another node runs the next attempt.
func (r *runner) shutdown(wait time.Duration) {
	r.closing.Store(true)
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
		rep := api.Report{Kind: api.ReportAbandoned, Task: a.task.ID, Attempt: a.task.Attempt, Node: r.n.cfg.Name, Error: "its node shut down during the attempt"}
		if err := r.n.applyReport(ctx, rep); err != nil && !errors.Is(err, errRefused) {
			r.n.log.Warn("could not hand back task", "task", a.task.ID, "err", err)
		}
	}
}

// kill stops every process without reporting (a simulated crash).
func (r *runner) kill() {
	r.mu.Lock()
	for _, a := range r.local {
		a.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
