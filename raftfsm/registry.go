package raftfsm

import (
	"errors"
	"fmt"
	"time"
)

// The ledger's commands, from one table: each CommandType is registered
// once, with its name, the field of Command that holds its payload, the
// function that applies it, the ledger schema that introduced it, and
// whether an older binary that does not know it may skip it. Encode,
// Decode, Apply, String, the frozen-values test and the fuzz seeds all
// read the table; adding a command is adding its row (and its applyX).
//
// Evolution rules:
//   - a value, once released, keeps its meaning forever (old logs are
//     replayed by new binaries); values are never reused;
//   - fields are only added, with omitempty, and Decode ignores fields it
//     does not know, so an older binary applies a newer entry without them;
//   - a new command type raises LedgerSchema; the leader proposes it only
//     once every voter gossips a schema that knows it (Proposable);
//   - a command an older binary may skip without diverging (it changes
//     nothing those binaries read) is marked ignorable: its type byte
//     carries ignorableBit, and a binary that does not know the type
//     applies it as a refusal (ErrIgnored) that changes nothing.

// LedgerSchema is the newest ledger schema this binary applies: which
// command types (and their meaning) it knows. Nodes gossip it.
//
//	1: the commands up to reported (12), tolerant decoding
//	2: rigs (quarantine, release), device leases, priorities, sealed logs,
//	   a job's check run (reported)
const LedgerSchema = 2

// SchemaCheckRuns is the ledger schema that records a job's check run.
const SchemaCheckRuns = 2

// SchemaRigs is the ledger schema of rigs: quarantine and release, the
// streak of infrastructure failures (TaskFinished.QuarantineAfter),
// device leases and priorities.
const SchemaRigs = 2

// ignorableBit marks, in an entry's type byte, a command type that older
// binaries may skip. Command type values stay below it.
const ignorableBit = 0x80

// ErrIgnored is the refusal of an ignorable command this binary does not
// know: the state did not change.
var ErrIgnored = errors.New("raftfsm: command type unknown to this binary, ignored")

// spec is one registered command type.
type spec struct {
	typ       CommandType
	name      string
	schema    int  // the LedgerSchema that introduced it
	ignorable bool // binaries that do not know it may skip it
	payload   func(c *Command) any
	decode    func(c *Command, p []byte) error
	apply     func(s *State, idx uint64, c Command) Result
	// needs is the schema a command of this type needs by its content: a
	// field added later changes what Apply does, so an older replica that
	// ignored it would diverge. Nil: schema.
	needs func(c Command) int
	// at is where the payload keeps the leader's time (Stamp); nil for a
	// payload without one.
	at func(c *Command) *time.Time
}

// entry builds the spec of a command whose payload is a *T in the field
// field of Command.
func entry[T any](typ CommandType, name string, schema int, ignorable bool, field func(c *Command) **T, apply func(s *State, idx uint64, p *T) Result) spec {
	var at func(c *Command) *time.Time
	if _, ok := any(new(T)).(timed); ok {
		at = func(c *Command) *time.Time {
			if p := *field(c); p != nil {
				return any(p).(timed).at()
			}
			return nil
		}
	}
	return spec{
		at:  at,
		typ: typ, name: name, schema: schema, ignorable: ignorable,
		payload: func(c *Command) any {
			if p := *field(c); p != nil {
				return p
			}
			return nil
		},
		decode: func(c *Command, b []byte) error {
			p := new(T)
			*field(c) = p
			return unmarshal(b, p)
		},
		apply: func(s *State, idx uint64, c Command) Result {
			p := *field(&c)
			if p == nil {
				return Result{Err: fmt.Errorf("%w: %s without its payload", ErrInvalid, name)}
			}
			return apply(s, idx, p)
		},
	}
}

// errResult adapts the applyX that return only a refusal.
func errResult[T any](f func(s *State, p *T) error) func(*State, uint64, *T) Result {
	return func(s *State, _ uint64, p *T) Result { return Result{Err: f(s, p)} }
}

// commandTable is every command type. Append only.
var commandTable = []spec{
	{typ: CmdBatch, name: "batch", schema: 1}, // several commands in one entry (Encode, Decode and Apply handle it)
	entry(CmdSpawn, "spawn", 1, false, func(c *Command) **Spawn { return &c.Spawn }, func(s *State, idx uint64, p *Spawn) Result { return s.applySpawn(p, idx) }),
	entry(CmdAssign, "assign", 1, false, func(c *Command) **Assign { return &c.Assign }, errResult((*State).applyAssign)),
	entry(CmdTaskStarted, "task_started", 1, false, func(c *Command) **TaskStarted { return &c.TaskStarted }, errResult((*State).applyTaskStarted)),
	entry(CmdTaskFinished, "task_finished", 1, false, func(c *Command) **TaskFinished { return &c.TaskFinished }, errResult((*State).applyTaskFinished)),
	entry(CmdCloseJob, "close_job", 1, false, func(c *Command) **CloseJob { return &c.CloseJob }, errResult((*State).applyCloseJob)),
	entry(CmdRequeue, "requeue", 1, false, func(c *Command) **Requeue { return &c.Requeue }, errResult((*State).applyRequeue)),
	entry(CmdBlobAdded, "blob_added", 1, false, func(c *Command) **BlobAdded { return &c.BlobAdded }, func(s *State, idx uint64, p *BlobAdded) Result { return Result{Err: s.applyBlobAdded(p, idx)} }),
	entry(CmdBlobDropped, "blob_dropped", 1, false, func(c *Command) **BlobDropped { return &c.BlobDropped }, errResult((*State).applyBlobDropped)),
	entry(CmdExpire, "expire", 1, false, func(c *Command) **Expire { return &c.Expire }, errResult((*State).applyExpire)),
	entry(CmdApprove, "approve", 1, false, func(c *Command) **Approve { return &c.Approve }, errResult((*State).applyApprove)),
	entry(CmdReported, "reported", 1, false, func(c *Command) **Reported { return &c.Reported }, errResult((*State).applyReported)),
	entry(CmdQuarantine, "quarantine", 2, false, func(c *Command) **Quarantine { return &c.Quarantine }, errResult((*State).applyQuarantine)),
	entry(CmdRelease, "release", 2, false, func(c *Command) **Release { return &c.Release }, errResult((*State).applyRelease)),
	entry(CmdLeaseExpire, "lease_expire", 2, false, func(c *Command) **LeaseExpire { return &c.LeaseExpire }, errResult((*State).applyLeaseExpire)),
	entry(CmdLogSealed, "log_sealed", 2, false, func(c *Command) **LogSealed { return &c.LogSealed }, func(s *State, idx uint64, p *LogSealed) Result { return Result{Err: s.applyLogSealed(p, idx)} }),
}

// contentNeeds are the schemas that fields added to older commands need.
var contentNeeds = map[CommandType]func(c Command) int{
	CmdSpawn: func(c Command) int {
		if sp := c.Spawn; sp != nil && (sp.Priority != 0 || sp.Device != "" || sp.LeaseFor != 0) {
			return 2
		}
		return 1
	},
	CmdAssign: func(c Command) int {
		if a := c.Assign; a != nil {
			for _, it := range a.Items {
				if it.Device != "" || it.LeaseFor != 0 {
					return 2
				}
			}
		}
		return 1
	},
	CmdTaskFinished: func(c Command) int {
		if f := c.TaskFinished; f != nil && f.QuarantineAfter > 0 {
			return 2
		}
		return 1
	},
	// A job's check run (GitHub App): a replica that dropped it would hold
	// another ledger than its peers.
	CmdReported: func(c Command) int {
		if r := c.Reported; r != nil && (r.CheckRun != 0 || r.Check != "") {
			return 2
		}
		return 1
	},
	CmdExpire: func(c Command) int {
		if e := c.Expire; e != nil && len(e.Logs) > 0 {
			return 2
		}
		return 1
	},
}

// registry indexes commandTable by type; filled once, at start.
var registry = map[CommandType]*spec{}

func init() {
	for i := range commandTable {
		commandTable[i].needs = contentNeeds[commandTable[i].typ]
		register(&commandTable[i])
	}
}

// register adds one command type; a duplicate or an out-of-range value is a
// programming error.
func register(sp *spec) {
	switch {
	case sp.typ == 0 || sp.typ >= ignorableBit:
		panic(fmt.Sprintf("raftfsm: command type %d out of range", sp.typ))
	case registry[sp.typ] != nil:
		panic(fmt.Sprintf("raftfsm: command type %d registered twice (%s, %s)", sp.typ, registry[sp.typ].name, sp.name))
	case sp.schema < 1 || sp.schema > LedgerSchema+1:
		panic(fmt.Sprintf("raftfsm: command %s: schema %d", sp.name, sp.schema))
	}
	registry[sp.typ] = sp
}

func specOf(t CommandType) *spec {
	if t == CmdBatch {
		return nil // not a payload command
	}
	return registry[t]
}

func (t CommandType) String() string {
	if sp := registry[t]; sp != nil {
		return sp.name
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// Schema is the ledger schema that introduced command type t (0: unknown
// to this binary).
func (t CommandType) Schema() int {
	if sp := registry[t]; sp != nil {
		return sp.schema
	}
	return 0
}

// NeedsSchema returns the newest ledger schema c (and, for a batch, each
// of its parts) needs a replica to know.
func (c Command) NeedsSchema() int {
	need := c.Type.Schema()
	if sp := registry[c.Type]; sp != nil && sp.needs != nil {
		need = max(need, sp.needs(c))
	}
	for _, p := range c.Batch {
		need = max(need, p.NeedsSchema())
	}
	return need
}

// applyRegistered applies a decoded command through the table.
func (s *State) applyRegistered(idx uint64, c Command) Result {
	if c.Raw != nil {
		return Result{Err: fmt.Errorf("%w: type %d", ErrIgnored, uint8(c.Type))}
	}
	sp := specOf(c.Type)
	if sp == nil {
		// Decode never yields an unknown type without Raw.
		panic(fmt.Sprintf("raftfsm: apply: unhandled %v", c.Type))
	}
	return sp.apply(s, idx, c)
}
