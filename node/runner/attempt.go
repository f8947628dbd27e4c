package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/mask"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// freshAssignment is how old (on the leader's clock, against this node's)
// an assignment may be and still start before its start is acknowledged.
const freshAssignment = 2 * time.Second

// run executes one attempt from start to its final report.
func (r *Runner) run(a *attempt, job raftfsm.Job, o topic.Origin) {
	t, cfg := a.task, r.cfg
	log := r.log.With("task", t.ID, "job", t.Job, "attempt", t.Attempt)
	// This node decides what it runs: checked again here, against its own
	// offer (it may have changed since the leader chose it).
	tp, serves := cfg.Host.Topic(t.Topic)
	switch {
	case !serves:
		r.infraFailed(a, "refused", fmt.Errorf("%s no longer serves topic %s", cfg.Name, t.Topic))
		return
	case !topic.Admits(tp.Rules(), o):
		log.Warn("refused a task this node does not accept", "origin", o.String(), "rules", tp.Rules())
		r.infraFailed(a, "refused", fmt.Errorf("%s does not accept spawns into %s from %s (--topic-accept %s=%s)", cfg.Name, t.Topic, o, t.Topic, strings.Join(tp.Rules(), ",")))
		return
	}
	out, err := cfg.Logs.Create(t.ID, t.Attempt)
	if err != nil {
		r.infraFailed(a, "cannot make its log", err)
		return
	}
	stopStream := cfg.Host.StreamLog(t, out)
	defer func() {
		stopStream()
		out.Finish()
		if r.ctx.Err() == nil { // a node going down seals nothing: its next life's logs are its own
			cfg.Host.KeepLog(t, out)
		}
	}()
	if dropped := topic.DropDeniedEnv(t, tp.EnvAllow); len(dropped) > 0 {
		out.Note("this node does not let a spawn set %s: dropped from the task's environment (--topic-env-allow %s=NAME allows one)", strings.Join(dropped, ", "), t.Topic)
	}

	workdir := filepath.Join(cfg.WorkDir, t.ID+"."+strconv.Itoa(t.Attempt))
	os.RemoveAll(workdir)
	if err := os.MkdirAll(workdir, 0o700); err != nil {
		out.Note("cannot make workspace: %v", err)
		r.infraFailed(a, "cannot make its workspace", err)
		return
	}
	defer os.RemoveAll(workdir)

	timeout := t.Timeout
	if timeout == 0 {
		timeout = tp.Timeout
	}
	if timeout == 0 {
		timeout = cfg.TaskTimeout
	}
	// Its executor, ready for it: for a container on a bridge network,
	// the node listens on the network's gateway (the task's OURCI_NODE).
	b, err := cfg.Host.Backend(a.ctx, tp)
	if err != nil {
		out.Note("%v", err)
		r.infraFailed(a, "executor unavailable", err)
		return
	}
	env := r.env(t, job, workdir)
	// Masked in its log: its own credentials (its token, its BLOB_URL and
	// the capability in it) and the topic's secrets; any other OurCI
	// token the masker finds by its shape.
	values := []string{cfg.Secret.TaskToken(t.ID, t.Attempt), cfg.Secret.BlobToken(t.Job, t.ID, t.Attempt)}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == "OURCI_TOKEN" || k == "BLOB_URL" {
			values = append(values, v)
		}
	}
	for k, v := range tp.Secrets { // set last: a task's --env cannot replace them
		env = append(env, k+"="+v)
		values = append(values, v)
	}
	infra := &infraSniffer{w: out} // under the masker: the reason it keeps is masked
	masked := mask.New(infra, values)
	defer masked.Close()
	out.MaskNotes(masked.All) // the node's own lines name arguments, which may hold a token
	spec, err := Spec(t, tp, executor.Spec{
		Args: t.Args, Script: tp.Agent, Env: env, Dir: workdir,
		Output: masked, Grace: cfg.Grace,
	})
	if err != nil {
		out.Note("%v", err)
		r.finish(a, raftfsm.TaskFailed, nil, err.Error())
		return
	}
	if src := job.Source; src.Repo != "" && src.SHA != "" {
		start := time.Now()
		checkout := cfg.Sources.Checkout
		if tp.Describe().Shared && cfg.TaskUser != "" {
			checkout = cfg.Sources.CheckoutStandalone // its task cannot read the mirrors in the data directory
		}
		if err := checkout(a.ctx, src.Repo, src.SHA, src.Branch, workdir); err != nil {
			out.Note("%v", err)
			r.infraFailed(a, "checkout failed", err)
			return
		}
		out.Note("checked out %s at %s in %s", src.Repo, src.SHA, time.Since(start).Round(time.Millisecond))
		// The workspace borrows the git objects of this job's mirror (and
		// only this job's) by absolute path: git in a container needs it.
		spec.ReadOnly = append(spec.ReadOnly, cfg.Sources.MirrorPath(src.Repo))
	}
	out.Note("task %s attempt %d on %s: %s", t.ID, t.Attempt, cfg.Name, Describe(tp, t))
	forget, err := cfg.Records.Mark(t.ID, t.Attempt)
	if err != nil {
		out.Note("%v", err)
		r.infraFailed(a, "cannot record its start", err)
		return
	}
	defer forget()
	// An assignment that is not fresh may be stale: this replica may be
	// applying old entries after a partition or a restart, and a later
	// entry may have given the attempt away already. Its start is then
	// fenced first: the ledger must accept it before anything runs. (A
	// fresh one starts at once and reports after: the dispatch fast path.)
	// Judged last thing before the start, so that a node frozen on the way
	// (SIGSTOP, a paused VM) rarely starts what it held too long; if it
	// froze between here and the start, the refused report stops it.
	fenced := cfg.Clock.Now().Sub(t.AssignedAt) > freshAssignment
	if fenced {
		if err := r.Report(api.Report{Kind: api.ReportStarted, Task: t.ID, Attempt: t.Attempt, Node: cfg.Name}); err != nil || a.ctx.Err() != nil {
			out.Note("the ledger gave this attempt away before it started: not run")
			log.Info("a stale assignment was refused before it started", "err", err)
			return
		}
	}
	r.startMu.RLock()
	if r.closing.Load() {
		r.startMu.RUnlock()
		out.Note("its node is shutting down: not started, handed back to the mesh")
		r.Report(api.Report{Kind: api.ReportAbandoned, Task: t.ID, Attempt: t.Attempt, Node: cfg.Name, Error: "its node shut down before the attempt started"})
		return
	}
	proc, err := b.Start(a.ctx, spec)
	if err != nil {
		r.startMu.RUnlock()
		out.Note("could not start: %v", err)
		log.Warn("task could not start", "err", err)
		r.infraFailed(a, "could not start", err)
		return
	}
	defer proc.Destroy()
	// metrics: wait for a node and spawn-to-start, on the ledger's clock;
	// run time on this process's monotonic clock.
	cfg.Metrics.TaskStarted(t.Topic, t.CreatedAt, t.AssignedAt, cfg.Clock.Now())
	procStart := time.Now()
	if pp, ok := proc.(interface{ Pid() int }); ok {
		cfg.Records.Group(t.ID, t.Attempt, pp.Pid())
	}
	log.Info("task started")
	r.startMu.RUnlock()
	if !fenced {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// Refused: the ledger gave the attempt away meanwhile (this
			// node was unhealthy, or its replica lags): stop it even if
			// the replica has not shown that yet.
			if r.Report(api.Report{Kind: api.ReportStarted, Task: t.ID, Attempt: t.Attempt, Node: cfg.Name}) != nil {
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
	case <-cfg.Clock.After(timeout):
		timedOut = true
		out.Note("timed out after %s: stopping the process group", timeout)
		proc.Stop()
		<-exited
	case <-a.stopped:
		stopped = true
		out.Note("the ledger took this attempt away (job closed or task requeued): stopping")
		proc.Stop()
		<-exited
	case <-r.ctx.Done():
		stopped = true
		proc.Stop()
		<-exited
	}
	cfg.Metrics.TaskRan(t.Topic, time.Since(procStart))
	// Clean up (a container is removed) before the ledger hears of the end:
	// a closed job has nothing of its left running.
	if err := proc.Destroy(); err != nil {
		out.Note("cleanup: %v", err)
	}
	masked.Close() // what it held back, masked, before the closing notes
	log.Info("task ended", "exit_code", code, "timed_out", timedOut, "stopped", stopped, "output_failed", outFailed)
	if werr, written := out.WriteErr(); werr != nil && !stopped {
		cfg.Host.NoteWriteError(werr)
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
		cfg.Metrics.TaskFinished(t.Topic, "stopped")
	case timedOut:
		r.finish(a, raftfsm.TaskTimedOut, &code, fmt.Sprintf("timed out after %s", timeout))
	case code == 0:
		r.finish(a, raftfsm.TaskPassed, &code, "")
	case code == InfraExitCode:
		why := infra.Reason()
		if why == "" {
			why = fmt.Sprintf("the task exited %d (EX_TEMPFAIL): its infrastructure failed, it says", InfraExitCode)
		}
		r.finish(a, raftfsm.TaskInfraFailed, nil, why) // as every infra failure: no exit code of the code's own
	default:
		r.finish(a, raftfsm.TaskFailed, &code, "")
	}
}

// Describe says in a log line how an attempt of the topic runs.
func Describe(tp topic.Topic, t *raftfsm.Task) string {
	d := tp.Describe()
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

// Spec fills in what an executor needs beyond the task's command.
func Spec(t *raftfsm.Task, tp topic.Topic, s executor.Spec) (executor.Spec, error) {
	// Docker labels its container with them, Host names its cgroup after them.
	s.Labels = map[string]string{"ourci.job": t.Job, "ourci.task": t.ID, "ourci.attempt": strconv.Itoa(t.Attempt)}
	if tp.Describe().Image {
		if t.Image == "" {
			return s, fmt.Errorf("topic %s runs each task in an image (%s): spawn them with --image IMAGE", t.Topic, tp.Kind())
		}
		s.Image = t.Image
	}
	return s, nil
}

func (r *Runner) finish(a *attempt, st raftfsm.TaskState, code *int, msg string) {
	r.cfg.Metrics.TaskFinished(a.task.Topic, string(st))
	r.Report(api.Report{Kind: api.ReportFinished, Task: a.task.ID, Attempt: a.task.Attempt, Node: r.cfg.Name, State: st, ExitCode: code, Error: msg})
}

// infraFailed reports that this node could not run the attempt: the ledger
// retries it on another node (bounded), and it never counts as the task's
// own failure.
func (r *Runner) infraFailed(a *attempt, what string, err error) {
	r.cfg.Host.NoteWriteError(err)
	r.finish(a, raftfsm.TaskInfraFailed, nil, what+": "+ErrText(err))
}

// ErrText is an error as an operator reads it: a full or broken disk by
// its plain name (the wrapped path is in the node's log).
func ErrText(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "no space left on device"
	case errors.Is(err, syscall.EROFS):
		return "read-only file system"
	case errors.Is(err, syscall.EDQUOT):
		return "disk quota exceeded"
	case errors.Is(err, syscall.EIO):
		return "input/output error"
	}
	return err.Error()
}
