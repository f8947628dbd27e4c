package raftfsm

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Result is what applying one command produced. Err is a refusal (compare
// with errors.Is against the Err* values); the state did not change for the
// refused part.
type Result struct {
	Err   error
	Job   string   // spawn: the job the task joined or opened
	Task  string   // spawn: the task's ID
	Batch []Result // batch: one result per part, in order
}

// Apply applies one decoded command at Raft index idx. It is a pure
// function of (state, command, index).
func (s *State) Apply(idx uint64, c Command) Result {
	s.at = idx
	defer func() { s.at = 0 }()
	switch c.Type {
	case CmdBatch:
		r := Result{Batch: make([]Result, len(c.Batch))}
		for i, part := range c.Batch {
			r.Batch[i] = s.Apply(idx, part)
		}
		return r
	}
	return s.applyRegistered(idx, c)
}

func (s *State) applySpawn(c *Spawn, idx uint64) Result {
	if c.Key != "" {
		if id, ok := s.Keys[c.Key]; ok {
			t := s.Tasks[id]
			return Result{Job: t.Job, Task: t.ID}
		}
	}
	switch {
	case c.Task == "" || c.Job == "":
		return Result{Err: fmt.Errorf("%w: spawn needs a job and a task id", ErrInvalid)}
	case c.Topic == "":
		return Result{Err: fmt.Errorf("%w: spawn needs a topic", ErrInvalid)}
	case s.Tasks[c.Task] != nil:
		return Result{Err: fmt.Errorf("%w: task %s exists", ErrConflict, c.Task)}
	case c.Assign != "" && c.Device != "" && s.LeaseOf(c.Assign, c.Device) != nil:
		return Result{Err: fmt.Errorf("%w: device %s of %s is held", ErrConflict, c.Device, c.Assign)}
	}
	job := s.Jobs[c.Job]
	if c.NewJob != nil {
		if job != nil {
			return Result{Err: fmt.Errorf("%w: job %s exists", ErrConflict, c.Job)}
		}
		if c.MaxOpenJobs > 0 && len(s.open) >= c.MaxOpenJobs {
			return Result{Err: fmt.Errorf("%w: %d jobs are open, at most %d (--max-open-jobs): wait for some to close", ErrQuota, len(s.open), c.MaxOpenJobs)}
		}
		if c.Parent != "" {
			return Result{Err: fmt.Errorf("%w: a new job's root has no parent", ErrInvalid)}
		}
		job = &Job{
			ID: c.Job, State: JobOpen, Status: StatusPending, Source: c.NewJob.Source,
			Trigger: c.NewJob.Trigger, Root: c.Task, CreatedAt: c.At,
			Deadline: c.NewJob.Deadline, Index: idx, Held: c.NewJob.Held,
		}
		if g := c.NewJob.GitHub; g != nil {
			cp := *g
			job.GitHub = &cp
		}
		s.Jobs[job.ID] = job
		s.touch(job.ID)
		s.appendJob(job)
		s.open[job.ID] = struct{}{}
	} else {
		switch {
		case job == nil:
			return Result{Err: fmt.Errorf("%w: job %s", ErrNotFound, c.Job)}
		case job.State != JobOpen:
			return Result{Err: fmt.Errorf("%w: job %s closed (%s), cannot spawn into it", ErrJobClosed, job.ID, job.Status)}
		case c.Parent == "":
			return Result{Err: fmt.Errorf("%w: a task spawned into job %s needs a parent", ErrInvalid, job.ID)}
		}
		if p := s.Tasks[c.Parent]; p == nil || p.Job != job.ID {
			return Result{Err: fmt.Errorf("%w: parent %s is not a task of job %s", ErrInvalid, c.Parent, job.ID)}
		}
		if c.MaxJobTasks > 0 && len(job.Tasks) >= c.MaxJobTasks {
			return Result{Err: fmt.Errorf("%w: job %s has %d tasks, at most %d (--max-tasks-per-job)", ErrQuota, job.ID, len(job.Tasks), c.MaxJobTasks)}
		}
	}
	t := &Task{
		ID: c.Task, Job: job.ID, Parent: c.Parent, Topic: c.Topic, Image: c.Image,
		Args: c.Args, Env: c.Env, Timeout: c.Timeout, ParentKind: c.ParentKind, Priority: c.Priority,
		State: TaskQueued, Attempt: 1, CreatedAt: c.At, Index: idx,
	}
	if c.Assign != "" && !job.Held {
		t.State, t.Node, t.AssignedAt = TaskAssigned, c.Assign, c.At
		_ = s.takeLease(t, c.Assign, c.Device, c.At, c.LeaseFor) // free: checked above
	}
	s.Tasks[t.ID] = t
	if c.Key != "" {
		s.Keys[c.Key] = t.ID
	}
	if p := s.Tasks[c.Parent]; p != nil {
		p.Children = append(p.Children, t.ID)
	}
	job.Tasks = append(job.Tasks, t.ID)
	job.Open++
	s.index(t.ID, "", t)
	return Result{Job: job.ID, Task: t.ID}
}

func (s *State) applyAssign(c *Assign) error {
	var errs []error
	for _, a := range c.Items {
		t := s.Tasks[a.Task]
		switch {
		case t == nil:
			errs = append(errs, fmt.Errorf("%w: assign task %s", ErrNotFound, a.Task))
		case a.Attempt != t.Attempt:
			errs = append(errs, fmt.Errorf("%w: assign task %s attempt %d, current is %d", ErrStaleAttempt, a.Task, a.Attempt, t.Attempt))
		case t.State != TaskQueued:
			errs = append(errs, fmt.Errorf("%w: assign task %s: it is %s, not queued", ErrConflict, a.Task, t.State))
		case s.Jobs[t.Job].Held:
			errs = append(errs, fmt.Errorf("%w: assign task %s: job %s waits for approval", ErrConflict, a.Task, t.Job))
		case a.Node == "":
			errs = append(errs, fmt.Errorf("%w: assign task %s to no node", ErrInvalid, a.Task))
		case a.Device != "" && s.LeaseOf(a.Node, a.Device) != nil:
			errs = append(errs, fmt.Errorf("%w: assign task %s: device %s of %s is held", ErrConflict, a.Task, a.Device, a.Node))
		default:
			t.State, t.Node, t.AssignedAt = TaskAssigned, a.Node, c.At
			_ = s.takeLease(t, a.Node, a.Device, c.At, a.LeaseFor) // free: checked above
			s.index(t.ID, "", t)
		}
	}
	return errors.Join(errs...)
}

// current returns the task if (node, attempt) names its current active attempt.
func (s *State) current(task string, attempt int, node string) (*Task, error) {
	t := s.Tasks[task]
	switch {
	case t == nil:
		return nil, fmt.Errorf("%w: task %s", ErrNotFound, task)
	case attempt != t.Attempt || (node != "" && node != t.Node):
		return nil, fmt.Errorf("%w: task %s attempt %d on %s; current is attempt %d on %q", ErrStaleAttempt, task, attempt, node, t.Attempt, t.Node)
	case t.State.Terminal():
		return nil, fmt.Errorf("%w: task %s already %s", ErrConflict, task, t.State)
	case !t.State.Active():
		return nil, fmt.Errorf("%w: task %s attempt %d is %s", ErrStaleAttempt, task, attempt, t.State)
	}
	return t, nil
}

func (s *State) applyTaskStarted(c *TaskStarted) error {
	if c.Node == "" {
		return fmt.Errorf("%w: a start report names its node", ErrInvalid)
	}
	t, err := s.current(c.Task, c.Attempt, c.Node)
	if err != nil {
		return err
	}
	if t.State == TaskAssigned {
		t.State, t.StartedAt = TaskRunning, c.At
		s.touch(t.Job)
	}
	return nil
}

func (s *State) applyTaskFinished(c *TaskFinished) error {
	switch c.State {
	case TaskPassed, TaskFailed, TaskTimedOut, TaskInfraFailed:
	default:
		return fmt.Errorf("%w: a task cannot finish as %q", ErrInvalid, c.State)
	}
	if c.Node == "" {
		return fmt.Errorf("%w: an end report names its node", ErrInvalid)
	}
	t, err := s.current(c.Task, c.Attempt, c.Node)
	if err != nil {
		return err
	}
	if c.ExitCode != nil {
		v := *c.ExitCode
		t.ExitCode = &v
	}
	s.noteInfra(c.Node, t.Topic, c.State == TaskInfraFailed, c.QuarantineAfter, c.Error, c.At)
	if c.State == TaskInfraFailed {
		s.infraRetry(t, c.Node, c.Error, c.MaxInfra, c.At)
		return nil
	}
	t.Error = c.Error
	if t.StartedAt.IsZero() {
		t.StartedAt = c.At
	}
	s.finish(t, c.State, c.At)
	return nil
}

// infraRetry handles an attempt that failed for the infrastructure on
// node: the next attempt is queued, to run on another node if there is one,
// until the task has been retried maxInfra times; then it ends infra_failed.
func (s *State) infraRetry(t *Task, node, reason string, maxInfra int, at time.Time) {
	if reason == "" {
		reason = "infrastructure failure"
	}
	reason = "on " + node + ": " + reason
	t.InfraError = reason
	if t.InfraRetries >= maxInfra {
		t.Error = fmt.Sprintf("infrastructure failure after %d retries: %s", t.InfraRetries, reason)
		if t.StartedAt.IsZero() {
			t.StartedAt = at
		}
		s.finish(t, TaskInfraFailed, at)
		return
	}
	old := t.Node
	s.endLease(t, old)
	t.Attempt++
	t.InfraRetries++
	if i, found := slices.BinarySearch(t.Avoid, node); !found && node != "" {
		t.Avoid = slices.Insert(slices.Clip(t.Avoid), i, node)
	}
	t.State, t.Node, t.Error = TaskQueued, "", "retrying after an infrastructure failure "+reason
	t.AssignedAt, t.StartedAt = time.Time{}, time.Time{}
	s.index(t.ID, old, t)
}

func (s *State) applyCloseJob(c *CloseJob) error {
	if c.Reason != ReasonTimedOut && c.Reason != ReasonCancelled && c.Reason != ReasonSuperseded {
		return fmt.Errorf("%w: close reason %q", ErrInvalid, c.Reason)
	}
	j := s.Jobs[c.Job]
	switch {
	case j == nil:
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	case j.State != JobOpen:
		return fmt.Errorf("%w: job %s", ErrJobClosed, c.Job)
	}
	j.Status, j.Reason, j.Successor = StatusError, c.Reason, c.By
	for _, id := range j.Tasks {
		if t := s.Tasks[id]; !t.State.Terminal() {
			t.Error = "job " + c.Reason
			s.finish(t, TaskCancelled, c.At)
		}
	}
	s.close(j, c.At) // a job with no open task is already closed by finish
	return nil
}

func (s *State) applyRequeue(c *Requeue) error {
	t, err := s.current(c.Task, c.Attempt, "")
	if err != nil {
		return err
	}
	if c.Infra {
		s.infraRetry(t, t.Node, c.Reason, c.MaxInfra, c.At)
		return nil
	}
	if c.MaxAttempts > 0 && t.Attempt >= c.MaxAttempts {
		t.Error = fmt.Sprintf("lost after %d attempts: %s", t.Attempt, c.Reason)
		s.finish(t, TaskLost, c.At)
		return nil
	}
	old := t.Node
	s.endLease(t, old)
	t.Attempt++
	t.State, t.Node, t.Error = TaskQueued, "", c.Reason
	t.AssignedAt, t.StartedAt = time.Time{}, time.Time{}
	s.index(t.ID, old, t)
	return nil
}

// finish moves an active or queued task to a terminal state and settles its job.
func (s *State) finish(t *Task, st TaskState, at time.Time) {
	old := t.Node
	s.endLease(t, old)
	t.State, t.FinishedAt = st, at
	s.index(t.ID, old, t)
	j := s.Jobs[t.Job]
	j.Open--
	switch {
	case st == TaskPassed:
		j.Passed++
	case st == TaskInfraFailed:
		// The job cannot pass, but nothing says the code is broken:
		// reported outward as an error, not a failure.
		j.Failed++
		if j.Status == StatusPending {
			j.Status, j.Reason = StatusError, fmt.Sprintf("task %s %s: %s", t.ID, st, t.Error)
		}
	default:
		j.Failed++
		if j.Status == StatusPending {
			j.Status, j.Reason = StatusFailed, fmt.Sprintf("task %s %s", t.ID, st)
		}
	}
	if j.Open == 0 {
		if j.Status == StatusPending {
			j.Status = StatusPassed
		}
		s.close(j, at)
	}
}

func (s *State) close(j *Job, at time.Time) {
	if j.State == JobClosed {
		return
	}
	j.State, j.ClosedAt = JobClosed, at
	delete(s.open, j.ID)
	s.touch(j.ID)
}

// appendJob adds a new job to JobOrder, which is sorted by (Index, ID):
// the order a restored snapshot rebuilds, even for jobs opened by one batch.
func (s *State) appendJob(j *Job) {
	i := len(s.JobOrder)
	for i > 0 {
		prev := s.Jobs[s.JobOrder[i-1]]
		if prev.Index < j.Index || (prev.Index == j.Index && prev.ID < j.ID) {
			break
		}
		i--
	}
	s.JobOrder = slices.Insert(s.JobOrder, i, j.ID)
}

func (s *State) applyApprove(c *Approve) error {
	j := s.Jobs[c.Job]
	switch {
	case j == nil:
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	case j.State != JobOpen:
		return fmt.Errorf("%w: job %s", ErrJobClosed, c.Job)
	case !j.Held:
		return fmt.Errorf("%w: job %s does not wait for approval", ErrConflict, c.Job)
	}
	j.Held, j.Deadline = false, c.Deadline
	if c.By != "" {
		j.Trigger += " (approved by " + c.By + ")"
	}
	s.touch(j.ID)
	return nil
}

func (s *State) applyReported(c *Reported) error {
	j := s.Jobs[c.Job]
	switch {
	case j == nil:
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	case j.GitHub == nil:
		return fmt.Errorf("%w: job %s did not come from GitHub", ErrInvalid, c.Job)
	}
	g := *j.GitHub // copy on write: a snapshot view may share the old one
	if c.Status != "" {
		g.Reported = c.Status
	}
	if c.Notified != "" {
		g.Notified = c.Notified
	}
	if c.CheckRun != 0 {
		g.CheckRun = c.CheckRun
	}
	if c.Check != "" {
		g.Checked = c.Check
	}
	j.GitHub = &g
	s.touch(j.ID)
	return nil
}
