package raftfsm

import "time"

// TaskState is where a task is in its life. The terminal states are
// Passed, Failed, TimedOut, Cancelled and Lost.
type TaskState string

const (
	TaskQueued    TaskState = "queued"    // waiting for a node
	TaskAssigned  TaskState = "assigned"  // a node owns the current attempt, not yet started
	TaskRunning   TaskState = "running"   // the node reported the attempt started
	TaskPassed    TaskState = "passed"    // exited 0
	TaskFailed    TaskState = "failed"    // exited non-zero, or could not start
	TaskTimedOut  TaskState = "timed_out" // ran past its timeout and was killed
	TaskCancelled TaskState = "cancelled" // its job closed (cancel, deadline) before it ended
	TaskLost      TaskState = "lost"      // every attempt's node died
	// TaskInfraFailed: the infrastructure, not the task, failed (its node
	// could not write its output, make its workspace or start it), on
	// every node it was retried on.
	TaskInfraFailed TaskState = "infra_failed"
)

// Terminal reports whether a task in state s will never change again.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskPassed, TaskFailed, TaskTimedOut, TaskCancelled, TaskLost, TaskInfraFailed:
		return true
	}
	return false
}

// Active reports whether a node is (or is about to be) running the task.
func (s TaskState) Active() bool { return s == TaskAssigned || s == TaskRunning }

// JobState says whether a job still accepts tasks.
type JobState string

const (
	JobOpen   JobState = "open"
	JobClosed JobState = "closed"
)

// JobStatus is the job's outward verdict, the one a commit status shows.
// It turns failed at the first failed task while the job stays open.
type JobStatus string

const (
	StatusPending JobStatus = "pending" // open, nothing failed yet
	StatusFailed  JobStatus = "failed"  // some task failed (the job may still be open)
	StatusPassed  JobStatus = "passed"  // closed, every task passed
	StatusError   JobStatus = "error"   // closed by its deadline or by cancel, or a task infra_failed
)

// Close reasons recorded on a job closed by force.
const (
	ReasonTimedOut   = "timed_out"
	ReasonCancelled  = "cancelled"
	ReasonSuperseded = "superseded" // a newer push to the same pull request
)

// GitHub ties a job to the GitHub event that opened it and records what
// GitHub has been told.
type GitHub struct {
	Owner    string `json:"owner"`
	Name     string `json:"name"`
	Delivery string `json:"delivery,omitempty"` // X-GitHub-Delivery that opened the job
	Author   Author `json:"author"`             // the head commit's author
	Fork     bool   `json:"fork,omitempty"`
	// Reported is the last commit status state GitHub acknowledged.
	Reported string `json:"reported,omitempty"`
	// Notified is the last notification sent about the job ("failed", "recovered").
	Notified string `json:"notified,omitempty"`
	// CheckRun is the job's check run on GitHub (App authentication), and
	// Checked its last state GitHub acknowledged: "in_progress" or
	// "completed/CONCLUSION".
	CheckRun int64  `json:"check_run,omitempty"`
	Checked  string `json:"checked,omitempty"`
	// Event is the delivery's content, what deduplicates it whatever its
	// delivery ID: "pull_request ACTION #PR HEAD" or "push REF HEAD".
	Event string `json:"event,omitempty"`
	// Updated is the pull request's updated_at in the delivery: a later
	// delivery stamped before it is for an older head.
	Updated time.Time `json:"updated,omitzero"`
}

// Author is a commit author as GitHub names them.
type Author struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Login string `json:"login,omitempty"`
}

// Source is the code a job builds, where known.
type Source struct {
	Repo   string `json:"repo,omitempty"`
	SHA    string `json:"sha,omitempty"`
	Branch string `json:"branch,omitempty"`
	PR     int    `json:"pr,omitempty"`
}

// Job is a tree of tasks opened by one trigger.
type Job struct {
	ID        string    `json:"id"`
	State     JobState  `json:"state"`
	Status    JobStatus `json:"status"`
	Reason    string    `json:"reason,omitempty"` // why it closed by force, or which task failed first
	Source    Source    `json:"source"`
	Trigger   string    `json:"trigger,omitempty"` // who or what opened it
	GitHub    *GitHub   `json:"github,omitempty"`
	Held      bool      `json:"held,omitempty"`          // waits for approval: nothing runs yet
	Successor string    `json:"superseded_by,omitempty"` // the job that superseded it
	Root      string    `json:"root"`
	Tasks     []string  `json:"tasks"` // every task, in spawn order
	CreatedAt time.Time `json:"created_at"`
	Deadline  time.Time `json:"deadline"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Index     uint64    `json:"index"`    // Raft index that opened it
	Modified  uint64    `json:"modified"` // Raft index that last changed it or one of its tasks

	// LogRefs are the hashes of its tasks' sealed logs, sorted: they stay
	// until the log retention ran out (LogsExpired), apart from BlobRef.
	LogRefs     []string `json:"log_refs,omitempty"`
	LogsExpired bool     `json:"logs_expired,omitempty"`

	Blobs   map[string]string `json:"blobs,omitempty"`     // blob name → hash, scoped to this job
	BlobRef []string          `json:"blob_refs,omitempty"` // hashes of the blobs it holds on to, sorted
	Expired bool              `json:"expired,omitempty"`   // retention ran out: names and references dropped

	Open   int `json:"open"`   // tasks not yet terminal
	Passed int `json:"passed"` // tasks that passed
	Failed int `json:"failed"` // tasks that ended any other terminal way
}

// Task is one shell script run somewhere in the mesh.
type Task struct {
	ID       string        `json:"id"`
	Job      string        `json:"job"`
	Parent   string        `json:"parent,omitempty"`
	Topic    string        `json:"topic"`
	Image    string        `json:"image,omitempty"`
	Args     []string      `json:"args"`
	Env      []string      `json:"env,omitempty"` // KEY=VALUE from spawn --env
	Timeout  time.Duration `json:"timeout,omitempty"`
	Children []string      `json:"children,omitempty"` // in spawn order
	// ParentKind is how the parent ran (Spawn.ParentKind).
	ParentKind string `json:"parent_kind,omitempty"`

	State    TaskState `json:"state"`
	Attempt  int       `json:"attempt"` // current attempt, from 1
	Node     string    `json:"node,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Error    string    `json:"error,omitempty"`
	// InfraRetries counts the attempts that failed for the infrastructure
	// and were retried (apart from node loss, which Attempt counts).
	InfraRetries int `json:"infra_retries,omitempty"`
	// InfraError is the last infrastructure failure, kept after a retry
	// passed so that its cause stays visible.
	InfraError string `json:"infra_error,omitempty"`
	// Avoid lists the nodes an attempt of this task failed on for the
	// infrastructure, sorted: the picker prefers others.
	Avoid []string `json:"avoid,omitempty"`

	// Priority orders the queue: higher first (then older jobs first).
	Priority int `json:"priority,omitempty"`
	// Device is the device of its node the current attempt holds (a lease).
	Device string `json:"device,omitempty"`
	// Logs are the sealed logs of its attempts, in the order they ended.
	Logs []LogRef `json:"logs,omitempty"`

	CreatedAt  time.Time `json:"created_at"`
	AssignedAt time.Time `json:"assigned_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Index      uint64    `json:"index"` // Raft index that spawned it; orders the queue
}

// Clone returns a deep copy, safe to keep after the FSM lock is released.
func (t *Task) Clone() *Task {
	c := *t
	c.Args = append([]string(nil), t.Args...)
	c.Env = append([]string(nil), t.Env...)
	c.Children = append([]string(nil), t.Children...)
	c.Avoid = append([]string(nil), t.Avoid...)
	c.Logs = append([]LogRef(nil), t.Logs...)
	if t.ExitCode != nil {
		v := *t.ExitCode
		c.ExitCode = &v
	}
	return &c
}

// Clone returns a deep copy, safe to keep after the FSM lock is released.
func (j *Job) Clone() *Job {
	c := *j
	c.Tasks = append([]string(nil), j.Tasks...)
	if j.GitHub != nil {
		g := *j.GitHub
		c.GitHub = &g
	}
	c.BlobRef = append([]string(nil), j.BlobRef...)
	c.LogRefs = append([]string(nil), j.LogRefs...)
	if j.Blobs != nil {
		c.Blobs = make(map[string]string, len(j.Blobs))
		for k, v := range j.Blobs {
			c.Blobs[k] = v
		}
	}
	return &c
}

// Blob is a content-addressed artifact: where copies are and who needs it.
type Blob struct {
	Hash      string    `json:"hash"`
	Size      int64     `json:"size"`
	Holders   []string  `json:"holders"`        // nodes with a verified copy, sorted
	Jobs      []string  `json:"jobs,omitempty"` // unexpired jobs that refer to it, sorted
	CreatedAt time.Time `json:"created_at"`
	Index     uint64    `json:"index"`
}

// Clone returns a deep copy.
func (b *Blob) Clone() *Blob {
	c := *b
	c.Holders = append([]string(nil), b.Holders...)
	c.Jobs = append([]string(nil), b.Jobs...)
	return &c
}

// LogRef is one attempt's sealed log: a blob (compressed, with each line's
// arrival time) whose holders the ledger tracks like any blob's.
type LogRef struct {
	Attempt int    `json:"attempt"`
	Hash    string `json:"hash"`  // the blob
	Size    int64  `json:"size"`  // the blob's bytes (compressed)
	Bytes   int64  `json:"bytes"` // the output's bytes, as the process wrote them (masked)
	Lines   int    `json:"lines"`
	Node    string `json:"node"` // where it ran
}

// Rig is one node serving one topic, as the ledger tracks its health: a
// run of infrastructure failures, and whether it is quarantined (no new
// tasks of the topic go there).
type Rig struct {
	Node        string    `json:"node"`
	Topic       string    `json:"topic"`
	InfraStreak int       `json:"infra_streak,omitempty"` // consecutive infrastructure failures
	Quarantined bool      `json:"quarantined,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	By          string    `json:"by,omitempty"` // who quarantined it: an operator, a health check, "auto"
	Since       time.Time `json:"since,omitzero"`
}

// Lease is a device of a node held by one attempt, exclusively, across
// every topic that shares the device.
type Lease struct {
	Node    string    `json:"node"`
	Device  string    `json:"device"`
	Task    string    `json:"task"`
	Attempt int       `json:"attempt"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires,omitzero"`
}

// RigKey and LeaseKey are the keys of State.Rigs and State.Leases (node
// names and topics hold no spaces).
func RigKey(node, topic string) string    { return node + " " + topic }
func LeaseKey(node, device string) string { return node + " " + device }
