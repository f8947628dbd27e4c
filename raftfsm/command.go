package raftfsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CommandType is the first byte of every ledger entry. Values are explicit and
// append-only: a value, once released, keeps its meaning forever, because old
// logs and snapshots are replayed by new binaries.
type CommandType uint8

const (
	CmdBatch        CommandType = 1  // several commands in one entry
	CmdSpawn        CommandType = 2  // a new task, opening a new job or joining an open one
	CmdAssign       CommandType = 3  // queued tasks handed to nodes
	CmdTaskStarted  CommandType = 4  // a node began an attempt
	CmdTaskFinished CommandType = 5  // an attempt ended
	CmdCloseJob     CommandType = 6  // a job closed by force (deadline, cancel)
	CmdRequeue      CommandType = 7  // an attempt's node is gone: queue the next attempt
	CmdBlobAdded    CommandType = 8  // a node holds a blob (optionally named in a job)
	CmdBlobDropped  CommandType = 9  // a node no longer holds a blob
	CmdExpire       CommandType = 10 // retention ran out: drop jobs' blob references, forget unreferenced blobs
	CmdApprove      CommandType = 11 // a held job may run
	CmdReported     CommandType = 12 // GitHub acknowledged a commit status, or a notification went out
	CmdQuarantine   CommandType = 13 // a node takes no tasks of a topic (schema 2)
	CmdRelease      CommandType = 14 // a quarantined node serves its topic again (schema 2)
	CmdLeaseExpire  CommandType = 15 // a device lease ran out (schema 2)
	CmdLogSealed    CommandType = 16 // an attempt's log is a blob now (schema 2)
)

// Spawn adds one task. With NewJob set it opens that job first and the task
// becomes its root. Assign, when set, is the node the leader chose; the task
// then skips the queue.
type Spawn struct {
	NewJob  *NewJob       `json:"new_job,omitempty"`
	Job     string        `json:"job"`
	Task    string        `json:"task"`
	Parent  string        `json:"parent,omitempty"`
	Topic   string        `json:"topic"`
	Image   string        `json:"image,omitempty"`
	Args    []string      `json:"args"`
	Env     []string      `json:"env,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	Assign  string        `json:"assign,omitempty"`
	Key     string        `json:"key,omitempty"` // idempotency key chosen by the client
	// ParentKind is how the parent ran (host, agent, docker; "" unknown or
	// a root task), as the leader saw it: nodes accept spawns by origin
	// (--topic-accept), and the picker needs it for the task's life.
	ParentKind string `json:"parent_kind,omitempty"`
	// MaxJobTasks and MaxOpenJobs are the leader's quotas (0: none): a
	// spawn past them is refused with ErrQuota.
	MaxJobTasks int `json:"max_job_tasks,omitempty"`
	MaxOpenJobs int `json:"max_open_jobs,omitempty"`
	// Priority orders the queue (higher first); Device is the device of
	// Assign the attempt holds (a lease until LeaseFor after At) (schema 2).
	Priority int           `json:"priority,omitempty"`
	Device   string        `json:"device,omitempty"`
	LeaseFor time.Duration `json:"lease_for,omitempty"`
	At       time.Time     `json:"at"`
}

// NewJob describes the job a Spawn opens.
type NewJob struct {
	Source   Source    `json:"source"`
	Trigger  string    `json:"trigger,omitempty"`
	Deadline time.Time `json:"deadline"` // zero for a held job: it starts at approval
	GitHub   *GitHub   `json:"github,omitempty"`
	Held     bool      `json:"held,omitempty"`
}

// Approve lets a held job run, its deadline counted from now.
type Approve struct {
	Job      string    `json:"job"`
	By       string    `json:"by,omitempty"`
	Deadline time.Time `json:"deadline"`
	At       time.Time `json:"at"`
}

// Reported records what the outside world was told about a job: Status,
// the commit status state GitHub acknowledged; Notified, a notification;
// CheckRun and Check, the job's check run and its acknowledged state
// ("in_progress", "completed/CONCLUSION"). CheckRun and Check need ledger
// schema 2 (NeedsSchema): a replica that ignored them would hold another
// ledger than its peers. Until every voter knows them the leader's GitHub
// loop cannot record its check run, and finds it again on GitHub by its
// external_id (the job ID) instead.
type Reported struct {
	Job      string `json:"job"`
	Status   string `json:"status,omitempty"`
	Notified string `json:"notified,omitempty"`
	CheckRun int64  `json:"check_run,omitempty"`
	Check    string `json:"check,omitempty"`
}

// Assign hands queued attempts to nodes.
type Assign struct {
	Items []Assignment `json:"items"`
	At    time.Time    `json:"at"`
}

// Assignment is one attempt of one task given to one node.
type Assignment struct {
	Task    string `json:"task"`
	Attempt int    `json:"attempt"`
	Node    string `json:"node"`
	// Device: the attempt holds this device of Node exclusively, until it
	// ends or LeaseFor after the assignment (schema 2).
	Device   string        `json:"device,omitempty"`
	LeaseFor time.Duration `json:"lease_for,omitempty"`
}

// TaskStarted reports that a node began running an attempt.
type TaskStarted struct {
	Task    string    `json:"task"`
	Attempt int       `json:"attempt"`
	Node    string    `json:"node"`
	At      time.Time `json:"at"`
}

// TaskFinished reports how an attempt ended. State is TaskPassed, TaskFailed,
// TaskTimedOut or TaskInfraFailed; an infrastructure failure queues the next
// attempt (to be run elsewhere) while the task has had fewer than MaxInfra
// infrastructure retries (the leader stamps MaxInfra).
type TaskFinished struct {
	Task     string    `json:"task"`
	Attempt  int       `json:"attempt"`
	Node     string    `json:"node"`
	State    TaskState `json:"state"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Error    string    `json:"error,omitempty"`
	MaxInfra int       `json:"max_infra,omitempty"`
	// QuarantineAfter > 0: the ledger tracks the node's run of
	// infrastructure failures on the task's topic, and quarantines it
	// there at this many in a row (schema 2).
	QuarantineAfter int       `json:"quarantine_after,omitempty"`
	At              time.Time `json:"at"`
}

// CloseJob closes an open job by force; its unfinished tasks are cancelled.
type CloseJob struct {
	Job    string    `json:"job"`
	Reason string    `json:"reason"`       // ReasonTimedOut, ReasonCancelled or ReasonSuperseded
	By     string    `json:"by,omitempty"` // superseded: the newer job
	At     time.Time `json:"at"`
}

// Requeue takes an active attempt away from its node (the node died) and
// queues the next attempt, or ends the task as lost once MaxAttempts ran.
type Requeue struct {
	Task        string `json:"task"`
	Attempt     int    `json:"attempt"`
	Reason      string `json:"reason"`
	MaxAttempts int    `json:"max_attempts"`
	// Infra: the attempt's node is alive but cannot run it (unhealthy):
	// counted as an infrastructure retry, bounded by MaxInfra, not as a
	// node loss.
	Infra    bool      `json:"infra,omitempty"`
	MaxInfra int       `json:"max_infra,omitempty"`
	At       time.Time `json:"at"`
}

// BlobAdded records that Node holds a verified copy of a blob. With Job set
// the blob belongs to that (open) job, under Name if given.
type BlobAdded struct {
	Hash string `json:"hash"` // 64 lowercase hex digits of its SHA-256
	Size int64  `json:"size"`
	Node string `json:"node"`
	Job  string `json:"job,omitempty"`
	Name string `json:"name,omitempty"`
	// MaxJobBytes is the leader's quota of blob bytes one job may refer to
	// (0: none): a new reference past it is refused with ErrQuota.
	MaxJobBytes int64     `json:"max_job_bytes,omitempty"`
	At          time.Time `json:"at"`
}

// BlobDropped records that Node no longer holds a blob.
type BlobDropped struct {
	Hash string `json:"hash"`
	Node string `json:"node"`
}

// Expire applies the retention policy the leader evaluated at At: each of
// Jobs (closed) loses its blob references and names; each of Blobs (no job
// refers to it) is forgotten, and nodes delete their copies.
type Expire struct {
	Jobs  []string `json:"jobs,omitempty"`
	Blobs []string `json:"blobs,omitempty"`
	// Forget lists expired jobs whose history period ran out too: they
	// leave the ledger with their tasks, so it stays bounded.
	Forget []string `json:"forget,omitempty"`
	// Logs lists closed jobs whose log retention ran out: their sealed
	// logs are forgotten (schema 2).
	Logs []string  `json:"logs,omitempty"`
	At   time.Time `json:"at"`
}

// Quarantine takes a node out of a topic's service, with the reason.
type Quarantine struct {
	Node   string    `json:"node"`
	Topic  string    `json:"topic"`
	Reason string    `json:"reason"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
}

// Release puts a quarantined node back into a topic's service.
type Release struct {
	Node  string    `json:"node"`
	Topic string    `json:"topic"`
	By    string    `json:"by,omitempty"`
	At    time.Time `json:"at"`
}

// LeaseExpire ends a device lease past its expiry, if the same attempt
// still holds it.
type LeaseExpire struct {
	Node    string    `json:"node"`
	Device  string    `json:"device"`
	Task    string    `json:"task"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
}

// LogSealed records an attempt's log as a blob on Node.
type LogSealed struct {
	Task string    `json:"task"`
	Log  LogRef    `json:"log"`
	At   time.Time `json:"at"`
}

// Command is one decoded ledger entry. Exactly one of the pointer fields
// matches Type; a batch holds its parts in Batch.
type Command struct {
	Type         CommandType
	Batch        []Command
	Spawn        *Spawn
	Assign       *Assign
	TaskStarted  *TaskStarted
	TaskFinished *TaskFinished
	CloseJob     *CloseJob
	Requeue      *Requeue
	BlobAdded    *BlobAdded
	BlobDropped  *BlobDropped
	Expire       *Expire
	Approve      *Approve
	Reported     *Reported
	Quarantine   *Quarantine
	Release      *Release
	LeaseExpire  *LeaseExpire
	LogSealed    *LogSealed
	// Raw is the whole entry of a command type this binary does not know
	// that its writer marked ignorable: kept to re-encode it as it was.
	Raw []byte
}

// ErrDecode marks an entry that cannot be decoded.
var ErrDecode = errors.New("raftfsm: undecodable command")

// Encode returns the wire form of a command: its type byte (with
// ignorableBit set for a command type marked ignorable), then its payload.
func Encode(c Command) ([]byte, error) {
	if c.Raw != nil {
		return append([]byte(nil), c.Raw...), nil
	}
	if c.Type == CmdBatch {
		var buf bytes.Buffer
		buf.WriteByte(byte(CmdBatch))
		for _, part := range c.Batch {
			if part.Type == CmdBatch {
				return nil, fmt.Errorf("raftfsm: encode: a batch cannot hold a batch")
			}
			b, err := Encode(part)
			if err != nil {
				return nil, err
			}
			buf.Write(binary.AppendUvarint(nil, uint64(len(b))))
			buf.Write(b)
		}
		return buf.Bytes(), nil
	}
	sp := specOf(c.Type)
	if sp == nil {
		return nil, fmt.Errorf("raftfsm: encode %v: unknown command type", c.Type)
	}
	v := sp.payload(&c)
	if v == nil {
		return nil, fmt.Errorf("raftfsm: encode %v: no payload", c.Type)
	}
	p, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: encode %v: %w", c.Type, err)
	}
	tb := byte(c.Type)
	if sp.ignorable {
		tb |= ignorableBit
	}
	return append([]byte{tb}, p...), nil
}

// maxBatchDepth bounds nesting so a hostile entry cannot exhaust the stack.
const maxBatchDepth = 1

// Decode parses the wire form written by Encode. It is tolerant: fields
// this binary does not know are ignored (a newer binary may add them; the
// API decodes strictly at the edge), and a command type it does not know
// decodes to a Command holding the entry (Raw) when its writer marked it
// ignorable, else fails with ErrDecode.
func Decode(b []byte) (Command, error) { return decode(b, 0) }

func decode(b []byte, depth int) (Command, error) {
	if len(b) == 0 {
		return Command{}, fmt.Errorf("%w: empty entry", ErrDecode)
	}
	c := Command{Type: CommandType(b[0] &^ ignorableBit)}
	p := b[1:]
	if c.Type == CmdBatch {
		if b[0]&ignorableBit != 0 {
			return Command{}, fmt.Errorf("%w: a batch marked ignorable", ErrDecode)
		}
		if depth >= maxBatchDepth {
			return Command{}, fmt.Errorf("%w: nested batch", ErrDecode)
		}
		for len(p) > 0 {
			n, k := binary.Uvarint(p)
			if k <= 0 || n > uint64(len(p)-k) {
				return Command{}, fmt.Errorf("%w: batch: bad length prefix", ErrDecode)
			}
			part, err := decode(p[k:k+int(n)], depth+1)
			if err != nil {
				return Command{}, err
			}
			c.Batch = append(c.Batch, part)
			p = p[k+int(n):]
		}
		return c, nil
	}
	sp := specOf(c.Type)
	switch {
	case sp == nil && b[0]&ignorableBit != 0:
		return Command{Type: c.Type, Raw: append([]byte(nil), b...)}, nil
	case sp == nil:
		return Command{}, fmt.Errorf("%w: unknown type %d", ErrDecode, b[0])
	case (b[0]&ignorableBit != 0) != sp.ignorable:
		return Command{}, fmt.Errorf("%w: %v: ignorable bit %v, registered %v", ErrDecode, c.Type, b[0]&ignorableBit != 0, sp.ignorable)
	}
	if err := sp.decode(&c, p); err != nil {
		return Command{}, fmt.Errorf("%w: %v: %w", ErrDecode, c.Type, err)
	}
	return c, nil
}

// unmarshal decodes one payload: a JSON object, unknown fields ignored,
// nothing after it.
func unmarshal(p []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(p))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}
