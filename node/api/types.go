package api

import (
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// SchemaVersion is the version of every JSON body this package defines.
const SchemaVersion = 1

// SpawnRequest asks for a new task. A caller holding a task token spawns a
// child of that task into its job; any other caller opens a new job.
type SpawnRequest struct {
	Topic      string         `json:"topic"`
	Image      string         `json:"image,omitempty"`
	Args       []string       `json:"args"`
	Env        []string       `json:"env,omitempty"`
	Timeout    Duration       `json:"timeout,omitempty"`
	JobTimeout Duration       `json:"job_timeout,omitempty"` // new jobs: deadline from now; 0 means the node's default
	Source     raftfsm.Source `json:"source,omitzero"`       // new jobs: the code they build
	Trigger    string         `json:"trigger,omitempty"`     // new jobs: who opened it
	Key        string         `json:"key,omitempty"`         // idempotency key: a retry with the same key lands once
	// Priority orders the queue: a queued task of higher priority gets a
	// free slot first, and within one priority the older job's (from
	// -1000 to 1000; 0 by default).
	Priority int `json:"priority,omitempty"`
	// ImageFirst is the seed's spawn_task form, `spawn_task -t TOPIC ARG...`:
	// the leader reads Args[0] as the image when the topic runs in Docker
	// (as its live subscribers gossip), else as an argument, unless it is
	// "" or "-" (the no-image marker, dropped). A topic served both ways is
	// refused with a message saying how to write it. Image must be empty.
	ImageFirst bool `json:"image_first,omitempty"`
}

// SpawnResponse names the task created (or found again by its key).
type SpawnResponse struct {
	SchemaVersion int    `json:"schema_version"`
	Job           string `json:"job"`
	Task          string `json:"task"`
}

// Report is a node telling the ledger about an attempt it runs.
type Report struct {
	Kind     string            `json:"kind"` // "started", "finished" or "abandoned"
	Task     string            `json:"task"`
	Attempt  int               `json:"attempt"`
	Node     string            `json:"node"`
	State    raftfsm.TaskState `json:"state,omitempty"` // finished: passed, failed or timed_out
	ExitCode *int              `json:"exit_code,omitempty"`
	Error    string            `json:"error,omitempty"`

	// blob_added, blob_dropped; log_sealed (the blob's hash and size)
	Hash string `json:"hash,omitempty"`
	Size int64  `json:"size,omitempty"`
	Job  string `json:"job,omitempty"`
	Name string `json:"name,omitempty"`

	// log_sealed: the output's bytes and lines
	Bytes int64 `json:"bytes,omitempty"`
	Lines int   `json:"lines,omitempty"`
}

// Report kinds.
const (
	ReportStarted     = "started"
	ReportFinished    = "finished"
	ReportAbandoned   = "abandoned"    // the node lost the attempt (it restarted): queue the next one
	ReportBlobAdded   = "blob_added"   // the node holds a verified copy of a blob
	ReportBlobDropped = "blob_dropped" // the node lost its copy (corrupt, deleted)
	ReportLogSealed   = "log_sealed"   // an attempt's log is a blob the node holds (ledger schema 2)
	// ReportBlobsReset: the node started with an empty blob store (its data
	// dir was wiped or lost): every record naming it as a holder is stale.
	// The leader withdraws them (as blob_dropped entries), so replication
	// sees at once that those blobs lost a copy.
	ReportBlobsReset = "blobs_reset"
)

// BlobInfo describes a stored blob.
type BlobInfo struct {
	SchemaVersion int    `json:"schema_version"`
	Ref           string `json:"ref"` // sha256:<hex>
	Size          int64  `json:"size"`
	Job           string `json:"job,omitempty"`
	Name          string `json:"name,omitempty"`
	// Index is the ledger index that recorded the blob (or a later one):
	// give it to GetBlobAt (GET ?index=) on another node.
	Index uint64 `json:"index,omitempty"`
}

// LogSections are the sections of an attempt's sealed log (GET
// /v1/tasks/{id}/log/sections), as its section markers make them:
// GitHub Actions' "::group::TITLE" ... "::endgroup::" and GitLab's
// "section_start:TS:NAME[collapsed=true]\r\e[0KTITLE" ...
// "section_end:TS:NAME\r\e[0K" (node/tasklog, sections.go). Times are
// the lines' arrival at the node, never the markers' own TS.
type LogSections struct {
	SchemaVersion int          `json:"schema_version"`
	Task          string       `json:"task"`
	Attempt       int          `json:"attempt"`
	Lines         int64        `json:"lines"` // in the whole log
	Sections      []LogSection `json:"sections"`
	// Truncated: the log starts more sections than are kept (10,000);
	// the later markers were ignored.
	Truncated bool `json:"truncated,omitempty"`
}

// LogSection is one section of a log, in the order sections start.
type LogSection struct {
	Name       string    `json:"name"`            // at most 200 bytes, escape sequences out
	Title      string    `json:"title,omitempty"` // GitLab: the text after the marker; GitHub: the name
	Style      string    `json:"style"`           // "github" or "gitlab"
	FirstLine  int64     `json:"first_line"`      // numbered from 1: the start marker's line
	LastLine   int64     `json:"last_line"`       // the end marker's (of a group closed by the next one, the line before it)
	Start      time.Time `json:"start"`           // the first line's arrival
	End        time.Time `json:"end"`             // the end marker's arrival (a group closed by the next one: the next one's)
	DurationMs int64     `json:"duration_ms"`
	Depth      int       `json:"depth"`               // how many sections it is inside
	Open       bool      `json:"open,omitempty"`      // never closed: it ends at the log's last line
	Collapsed  bool      `json:"collapsed,omitempty"` // GitLab's [collapsed=true]
}

// Duration is the section's, from start to end.
func (s LogSection) Duration() time.Duration { return time.Duration(s.DurationMs) * time.Millisecond }

// Error is the body of every non-2xx response.
type Error struct {
	SchemaVersion int    `json:"schema_version"`
	Error         string `json:"error"`
	Code          string `json:"code"` // machine-readable: see the Code* constants
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeJobClosed    = "job_closed"
	CodeConflict     = "conflict"
	CodeStale        = "stale_attempt"
	CodeNoLeader     = "no_leader"
	CodeInternal     = "internal"
	CodeNoSpace      = "no_space" // 507: the node's disk is full
	CodeQuota        = "quota"    // 413 or 429: a quota (flags --max-*) would be passed
	CodeUnhealthy    = "unhealthy"
	CodeNotYet       = "not_yet" // 503: a voter runs a binary that does not know the command yet
	CodeBusy         = "busy"    // 503 with Retry-After: a cap of work in flight is reached
)

// Status is the mesh as one node sees it.
type Status struct {
	SchemaVersion int       `json:"schema_version"`
	Node          string    `json:"node"`
	Leader        string    `json:"leader"`
	RaftRole      string    `json:"raft_role"`
	Index         uint64    `json:"index"`
	Members       []Member  `json:"members"`
	Topics        []Topic   `json:"topics"`
	Jobs          []JobView `json:"jobs"`
	Waiting       []Waiting `json:"waiting"`
	// Quorum sums up the Raft voters as this node sees them.
	Quorum Quorum `json:"quorum"`
}

// Rig is one node serving one topic, as the ledger tracks its health.
type Rig struct {
	Node        string    `json:"node"`
	Topic       string    `json:"topic"`
	Quarantined bool      `json:"quarantined"`
	Reason      string    `json:"reason,omitempty"`
	By          string    `json:"by,omitempty"` // who quarantined or released it: an operator, "auto"
	Since       time.Time `json:"since,omitzero"`
	InfraStreak int       `json:"infra_streak,omitempty"` // infrastructure failures in a row
}

// Rigs answers GET /v1/rigs: every rig the ledger tracks, by node and topic.
type Rigs struct {
	SchemaVersion int   `json:"schema_version"`
	Rigs          []Rig `json:"rigs"`
}

// Quorum is the health of the Raft quorum: how many voters there are, how
// many gossip sees alive, how many it takes, and how many more may fail.
type Quorum struct {
	Voters    int    `json:"voters"`
	Alive     int    `json:"alive"`
	Needed    int    `json:"needed"`
	Tolerates int    `json:"tolerates"`         // voters that may still fail (negative: no quorum)
	Warning   string `json:"warning,omitempty"` // e.g. one more failure loses the quorum
}

// Member is one node of the mesh.
type Member struct {
	Name     string   `json:"name"`
	Addr     string   `json:"addr"` // gossip
	HTTP     string   `json:"http"`
	RaftAd   string   `json:"raft_addr"`
	Topics   []string `json:"topics"`
	Slots    int      `json:"slots"`
	Used     int      `json:"used"`
	Raft     string   `json:"raft"` // voter, nonvoter or none
	Leader   bool     `json:"leader"`
	Alive    bool     `json:"alive"`
	Draining bool     `json:"draining,omitempty"` // takes no new tasks; leaves once its running ones end
	Blobs    int64    `json:"blobs"`              // artifacts the ledger says it holds
	Bytes    int64    `json:"blob_bytes"`         // their total size
	Logs     int64    `json:"logs"`               // sealed task logs it holds (blobs too)
	LogBytes int64    `json:"log_bytes"`          // their total size

	ID         string `json:"id,omitempty"`          // its Raft server ID (it belongs to its data directory)
	Unhealthy  string `json:"unhealthy,omitempty"`   // why it takes no work (disk full, Raft log not writable)
	CatchingUp bool   `json:"catching_up,omitempty"` // its replica is catching up: no work yet
	NoVote     bool   `json:"no_vote,omitempty"`     // --voter=never
	Version    string `json:"version,omitempty"`     // its binary's version
	Schema     int    `json:"ledger_schema,omitempty"`
}

// Topic sums up who serves a topic.
type Topic struct {
	Name   string   `json:"name"`
	Nodes  []string `json:"nodes"`
	Slots  int      `json:"slots"`
	Used   int      `json:"used"`
	Queued int      `json:"queued"`
}

// Waiting is a queued task and why it is not running yet.
type Waiting struct {
	Task   string `json:"task"`
	Job    string `json:"job"`
	Topic  string `json:"topic"`
	Reason string `json:"reason"`
}

// JobView is a job as the API shows it.
type JobView struct {
	ID        string            `json:"id"`
	State     raftfsm.JobState  `json:"state"`
	Status    raftfsm.JobStatus `json:"status"`
	Reason    string            `json:"reason,omitempty"`
	Source    raftfsm.Source    `json:"source,omitzero"`
	Trigger   string            `json:"trigger,omitempty"`
	Held      bool              `json:"held,omitempty"`          // waits for approval
	Successor string            `json:"superseded_by,omitempty"` // the job that superseded it
	GitHub    *raftfsm.GitHub   `json:"github,omitempty"`
	Root      string            `json:"root"`
	Tasks     int               `json:"tasks"`
	Open      int               `json:"open"`
	Passed    int               `json:"passed"`
	Failed    int               `json:"failed"`
	CreatedAt time.Time         `json:"created_at"`
	Deadline  time.Time         `json:"deadline"`
	ClosedAt  time.Time         `json:"closed_at,omitzero"`
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID       string            `json:"id"`
	Parent   string            `json:"parent"`
	Topic    string            `json:"topic"`
	Image    string            `json:"image,omitempty"`
	Args     []string          `json:"args"`
	State    raftfsm.TaskState `json:"state"`
	Node     string            `json:"node"`
	Attempt  int               `json:"attempt"`
	ExitCode *int              `json:"exit_code"`
	Error    string            `json:"error,omitempty"`
	Waiting  string            `json:"waiting,omitempty"` // queued: why
	// InfraRetries counts attempts that failed for the infrastructure and
	// were retried elsewhere; InfraError is the last such failure.
	InfraRetries int       `json:"infra_retries,omitempty"`
	InfraError   string    `json:"infra_error,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
}

// JobDetail is one job with its task tree (tasks in spawn order; Parent
// links form the tree).
type JobDetail struct {
	SchemaVersion int        `json:"schema_version"`
	Index         uint64     `json:"index"`
	Job           JobView    `json:"job"`
	Tasks         []TaskView `json:"tasks"`
}

// Duration is a time.Duration that travels as a Go duration string ("90s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// NewJobView converts a ledger job.
func NewJobView(j *raftfsm.Job) JobView {
	return JobView{
		ID: j.ID, State: j.State, Status: j.Status, Reason: j.Reason, Source: j.Source,
		Trigger: j.Trigger, Held: j.Held, Successor: j.Successor, GitHub: j.GitHub, Root: j.Root, Tasks: len(j.Tasks), Open: j.Open, Passed: j.Passed,
		Failed: j.Failed, CreatedAt: j.CreatedAt, Deadline: j.Deadline, ClosedAt: j.ClosedAt,
	}
}

// NewTaskView converts a ledger task.
func NewTaskView(t *raftfsm.Task) TaskView {
	v := TaskView{
		ID: t.ID, Parent: t.Parent, Topic: t.Topic, Image: t.Image, Args: t.Args, State: t.State,
		Node: t.Node, Attempt: t.Attempt, Error: t.Error, CreatedAt: t.CreatedAt,
		StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, InfraRetries: t.InfraRetries, InfraError: t.InfraError,
	}
	if t.ExitCode != nil {
		c := *t.ExitCode
		v.ExitCode = &c
	}
	if v.Args == nil {
		v.Args = []string{}
	}
	return v
}

// Ledger identifies a replica's state: replicas at the same index must have
// the same hash.
type Ledger struct {
	SchemaVersion int    `json:"schema_version"`
	Node          string `json:"node"`
	Index         uint64 `json:"index"`
	Hash          string `json:"hash"` // hex SHA-256 of the canonical snapshot stream
	Jobs          int    `json:"jobs"`
	Tasks         int    `json:"tasks"`
}

// SnapshotRestored answers POST /v1/operator/snapshot: the ledger saved in
// the snapshot file holds on every replica from ledger index Index on.
type SnapshotRestored struct {
	SchemaVersion int       `json:"schema_version"`
	Index         uint64    `json:"index"`          // a replica at or past it holds the restored ledger
	SnapshotIndex uint64    `json:"snapshot_index"` // the index the file was saved at
	Saved         time.Time `json:"saved"`          // when it was saved
	SHA256        string    `json:"sha256"`         // of the file's body, as its header says
	Jobs          int       `json:"jobs"`
	Tasks         int       `json:"tasks"`
	Blobs         int       `json:"blobs"`
}

// RaftPeers is the Raft configuration as the leader sees it
// (GET /v1/operator/raft, `ourci-node operator raft list-peers`).
type RaftPeers struct {
	SchemaVersion int        `json:"schema_version"`
	Leader        string     `json:"leader"`
	Index         uint64     `json:"index"`
	Peers         []RaftPeer `json:"peers"`
	Quorum        Quorum     `json:"quorum"`
}

// RaftPeer is one Raft server.
type RaftPeer struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Address   string `json:"address"`
	Suffrage  string `json:"suffrage"` // voter or nonvoter
	Alive     bool   `json:"alive"`    // gossip sees a member with this ID
	Leader    bool   `json:"leader"`
	Unhealthy string `json:"unhealthy,omitempty"`
	NoVote    bool   `json:"no_vote,omitempty"`
	// Stale: a live member carries this server's name under another ID
	// (its data directory was replaced); the leader removes it.
	Stale bool `json:"stale,omitempty"`
}

// RemovedPeers answers POST /v1/operator/raft/remove-peer.
type RemovedPeers struct {
	SchemaVersion int      `json:"schema_version"`
	Removed       []string `json:"removed"` // Raft IDs
}
