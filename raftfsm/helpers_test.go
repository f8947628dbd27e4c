package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed clock every test command is stamped from.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func intp(v int) *int { return &v }

// wire pushes c through Encode and Decode, so every command a test applies
// has been through its wire form, exactly as a replica receives it.
func wire(t testing.TB, c Command) Command {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("Encode(%v): got error %v, want nil", c.Type, err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode(%v)): got error %v, want nil", c.Type, err)
	}
	return d
}

// mustEncode encodes c or fails the test.
func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("Encode(%v): got error %v, want nil", c.Type, err)
	}
	return b
}

// ledger is a State plus the next Raft index, for tests that apply
// command sequences.
type ledger struct {
	t   testing.TB
	s   *State
	idx uint64
}

func newLedger(t testing.TB) *ledger {
	return &ledger{t: t, s: NewState()}
}

// do applies c (after a wire round trip) at the next index.
func (l *ledger) do(c Command) Result {
	l.t.Helper()
	l.idx++
	return l.s.Apply(l.idx, wire(l.t, c))
}

// ok applies c and fails the test if it, or any part of a batch, is refused.
func (l *ledger) ok(c Command) Result {
	l.t.Helper()
	r := l.do(c)
	if err := resultErr(r); err != nil {
		l.t.Fatalf("apply %v at %d: got error %v, want nil", c.Type, l.idx, err)
	}
	return r
}

// refused applies c, requires errors.Is(err, want) and requires that the
// state did not change.
func (l *ledger) refused(c Command, want error) Result {
	l.t.Helper()
	before := l.s.Hash()
	order := slices.Clone(l.s.JobOrder)
	r := l.do(c)
	if !errors.Is(r.Err, want) {
		l.t.Fatalf("apply %v: got error %v, want %v", c.Type, r.Err, want)
	}
	if after := l.s.Hash(); after != before {
		l.t.Fatalf("apply refused %v: state hash changed: got %x, want %x", c.Type, after[:6], before[:6])
	}
	if !slices.Equal(l.s.JobOrder, order) {
		l.t.Fatalf("apply refused %v: JobOrder got %v, want %v", c.Type, l.s.JobOrder, order)
	}
	return r
}

func resultErr(r Result) error {
	errs := []error{r.Err}
	for _, p := range r.Batch {
		errs = append(errs, resultErr(p))
	}
	return errors.Join(errs...)
}

func (l *ledger) task(id string) *Task {
	l.t.Helper()
	t := l.s.Tasks[id]
	if t == nil {
		l.t.Fatalf("task %s: got nil, want a task", id)
	}
	return t
}

func (l *ledger) job(id string) *Job {
	l.t.Helper()
	j := l.s.Jobs[id]
	if j == nil {
		l.t.Fatalf("job %s: got nil, want a job", id)
	}
	return j
}

// Command builders. Times are derived from t0 so runs are reproducible.

func spawnRoot(job, task string) Command {
	return Command{Type: CmdSpawn, Spawn: &Spawn{
		NewJob: &NewJob{
			Source:   Source{Repo: "ourci/ourci", SHA: "c0ffee" + job, Branch: "main"},
			Trigger:  "push",
			Deadline: at(3600),
		},
		Job: job, Task: task, Topic: "build", Args: []string{"make", task}, At: at(0),
	}}
}

func spawnChild(job, task, parent string) Command {
	return Command{Type: CmdSpawn, Spawn: &Spawn{
		Job: job, Task: task, Parent: parent, Topic: "test", Args: []string{"go", "test", task}, At: at(1),
	}}
}

func assign(items ...Assignment) Command {
	return Command{Type: CmdAssign, Assign: &Assign{Items: items, At: at(2)}}
}

func started(task string, attempt int, node string) Command {
	return Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: task, Attempt: attempt, Node: node, At: at(3)}}
}

func finished(task string, attempt int, node string, st TaskState, code *int) Command {
	return Command{Type: CmdTaskFinished, TaskFinished: &TaskFinished{
		Task: task, Attempt: attempt, Node: node, State: st, ExitCode: code, At: at(4),
	}}
}

func closeJob(job, reason string) Command {
	return Command{Type: CmdCloseJob, CloseJob: &CloseJob{Job: job, Reason: reason, At: at(5)}}
}

func requeue(task string, attempt, maxAttempts int) Command {
	return Command{Type: CmdRequeue, Requeue: &Requeue{
		Task: task, Attempt: attempt, Reason: "node gone", MaxAttempts: maxAttempts, At: at(6),
	}}
}

func infraFailed(task string, attempt int, node, reason string, maxInfra int) Command {
	return Command{Type: CmdTaskFinished, TaskFinished: &TaskFinished{
		Task: task, Attempt: attempt, Node: node, State: TaskInfraFailed, Error: reason, MaxInfra: maxInfra, At: at(4),
	}}
}

func batch(parts ...Command) Command { return Command{Type: CmdBatch, Batch: parts} }

// blobHash returns the i-th test blob's hash: 64 lowercase hex digits.
func blobHash(i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("blob-%d", i)))
	return hex.EncodeToString(h[:])
}

func blobAdded(hash string, size int64, node, job, name string) Command {
	return Command{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: hash, Size: size, Node: node, Job: job, Name: name, At: at(7)}}
}

func blobDropped(hash, node string) Command {
	return Command{Type: CmdBlobDropped, BlobDropped: &BlobDropped{Hash: hash, Node: node}}
}

func expire(jobs, blobs []string) Command {
	return Command{Type: CmdExpire, Expire: &Expire{Jobs: jobs, Blobs: blobs, At: at(8)}}
}

// run assigns task (attempt 1) to node, starts it and finishes it.
func (l *ledger) run(task, node string, st TaskState, code int) {
	l.t.Helper()
	a := l.task(task).Attempt
	l.ok(assign(Assignment{Task: task, Attempt: a, Node: node}))
	l.ok(started(task, a, node))
	l.ok(finished(task, a, node, st, intp(code)))
}

func taskIDs(ts []*Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func jobIDs(js []*Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

// snapshotBytes returns the state's snapshot stream.
func snapshotBytes(t testing.TB, s *State, index uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, s, index); err != nil {
		t.Fatalf("WriteSnapshot: got error %v, want nil", err)
	}
	return buf.Bytes()
}

// restore round-trips s through the snapshot format.
func restore(t testing.TB, s *State, index uint64) *State {
	t.Helper()
	r, idx, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, s, index)))
	if err != nil {
		t.Fatalf("ReadSnapshot: got error %v, want nil", err)
	}
	if idx != index {
		t.Fatalf("ReadSnapshot index: got %d, want %d", idx, index)
	}
	return r
}

// checkInvariants verifies that the ledger is internally consistent: job
// counters, job state and status, the derived indexes and cross references.
func checkInvariants(t testing.TB, s *State) {
	t.Helper()
	if err := invariantErr(s); err != nil {
		t.Fatalf("ledger invariant: %v", err)
	}
}

func invariantErr(s *State) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	if len(s.JobOrder) != len(s.Jobs) {
		bad("JobOrder has %d jobs, Jobs has %d", len(s.JobOrder), len(s.Jobs))
	}
	seen := map[string]bool{}
	for _, id := range s.JobOrder {
		if seen[id] || s.Jobs[id] == nil {
			bad("JobOrder: %q duplicated or unknown", id)
		}
		seen[id] = true
	}
	wantOpen := map[string]bool{}
	for id, j := range s.Jobs {
		var open, passed, failed int
		for _, tid := range j.Tasks {
			tk := s.Tasks[tid]
			if tk == nil {
				bad("job %s: unknown task %s", id, tid)
				continue
			}
			if tk.Job != id {
				bad("task %s: job got %s, want %s", tid, tk.Job, id)
			}
			switch {
			case !tk.State.Terminal():
				open++
			case tk.State == TaskPassed:
				passed++
			default:
				failed++
			}
		}
		if j.Open != open || j.Passed != passed || j.Failed != failed {
			bad("job %s counts: got open=%d passed=%d failed=%d, want %d/%d/%d", id, j.Open, j.Passed, j.Failed, open, passed, failed)
		}
		if (j.State == JobClosed) != (j.Open == 0) {
			bad("job %s: state %s with %d open tasks", id, j.State, j.Open)
		}
		switch j.Status {
		case StatusPending:
			if j.State != JobOpen || j.Failed != 0 {
				bad("job %s: pending but state %s, %d failed", id, j.State, j.Failed)
			}
		case StatusPassed:
			if j.State != JobClosed || j.Failed != 0 {
				bad("job %s: passed but state %s, %d failed", id, j.State, j.Failed)
			}
		case StatusFailed:
			if j.Failed == 0 || !strings.HasPrefix(j.Reason, "task ") {
				bad("job %s: failed with %d failed tasks, reason %q", id, j.Failed, j.Reason)
			}
		case StatusError:
			infra := false
			for _, tid := range j.Tasks {
				infra = infra || (s.Tasks[tid] != nil && s.Tasks[tid].State == TaskInfraFailed)
			}
			switch {
			case infra && strings.HasPrefix(j.Reason, "task "):
				// an infrastructure failure: open or closed
			case j.State != JobClosed || (j.Reason != ReasonTimedOut && j.Reason != ReasonCancelled && j.Reason != ReasonSuperseded):
				bad("job %s: error but state %s reason %q", id, j.State, j.Reason)
			}
		default:
			bad("job %s: status %q", id, j.Status)
		}
		if j.State == JobOpen {
			wantOpen[id] = true
		}
		if len(j.Tasks) == 0 || j.Tasks[0] != j.Root {
			bad("job %s: root %s is not first of %v", id, j.Root, j.Tasks)
		}
	}
	gotOpen := map[string]bool{}
	for _, j := range s.OpenJobs() {
		gotOpen[j.ID] = true
	}
	if fmt.Sprint(gotOpen) != fmt.Sprint(wantOpen) {
		bad("OpenJobs: got %v, want %v", gotOpen, wantOpen)
	}

	var wantQueued []string
	wantActive := map[string][]string{}
	for id, tk := range s.Tasks {
		if s.Jobs[tk.Job] == nil {
			bad("task %s: unknown job %s", id, tk.Job)
		}
		if tk.Attempt < 1 {
			bad("task %s: attempt %d", id, tk.Attempt)
		}
		switch {
		case tk.State == TaskQueued:
			wantQueued = append(wantQueued, id)
			if tk.Node != "" {
				bad("task %s: queued on node %q", id, tk.Node)
			}
		case tk.State.Active():
			wantActive[tk.Node] = append(wantActive[tk.Node], id)
		}
		if tk.Parent != "" {
			p := s.Tasks[tk.Parent]
			if p == nil || p.Job != tk.Job || !slices.Contains(p.Children, id) {
				bad("task %s: parent %s does not list it", id, tk.Parent)
			}
		}
	}
	slices.Sort(wantQueued)
	gotQueued := taskIDs(s.Queued())
	slices.Sort(gotQueued)
	if !slices.Equal(gotQueued, wantQueued) {
		bad("Queued: got %v, want %v", gotQueued, wantQueued)
	}
	nodes := make([]string, 0, len(wantActive))
	for n, ids := range wantActive {
		nodes = append(nodes, n)
		slices.Sort(ids)
		got := taskIDs(s.Active(n))
		slices.Sort(got)
		if !slices.Equal(got, ids) || s.Load(n) != len(ids) {
			bad("Active(%s): got %v (load %d), want %v", n, got, s.Load(n), ids)
		}
	}
	slices.Sort(nodes)
	if got := s.ActiveNodes(); !slices.Equal(got, nodes) {
		bad("ActiveNodes: got %v, want %v", got, nodes)
	}
	for k, id := range s.Keys {
		if s.Tasks[id] == nil {
			bad("key %q: unknown task %s", k, id)
		}
	}
	sortedSet := func(v []string) bool {
		return slices.IsSorted(v) && len(slices.Compact(slices.Clone(v))) == len(v)
	}
	for h, b := range s.Blobs {
		if b.Hash != h || b.Size < 0 {
			bad("blob %s: hash %s size %d", h, b.Hash, b.Size)
		}
		if !sortedSet(b.Holders) || !sortedSet(b.Jobs) {
			bad("blob %s: holders %v / jobs %v not sorted sets", h, b.Holders, b.Jobs)
		}
		for _, id := range b.Jobs {
			j := s.Jobs[id]
			if j == nil || !(!j.Expired && slices.Contains(j.BlobRef, h) || slices.Contains(j.LogRefs, h)) {
				bad("blob %s: job %s does not refer to it", h, id)
			}
		}
	}
	for id, j := range s.Jobs {
		if !sortedSet(j.BlobRef) {
			bad("job %s: blob refs %v not a sorted set", id, j.BlobRef)
		}
		if j.Expired && (len(j.BlobRef) != 0 || len(j.Blobs) != 0 || j.State != JobClosed) {
			bad("job %s: expired but state %s refs %v names %v", id, j.State, j.BlobRef, j.Blobs)
		}
		for _, h := range j.BlobRef {
			if b := s.Blobs[h]; b == nil || !slices.Contains(b.Jobs, id) {
				bad("job %s: blob ref %s unknown or not linked back", id, h)
			}
		}
		for name, h := range j.Blobs {
			if !slices.Contains(j.BlobRef, h) {
				bad("job %s: blob name %q -> %s not among its refs", id, name, h)
			}
		}
	}
	for k, l := range s.Leases {
		t := s.Tasks[l.Task]
		switch {
		case k != LeaseKey(l.Node, l.Device):
			bad("lease %q: node %s device %s", k, l.Node, l.Device)
		case t == nil || t.Attempt != l.Attempt || t.Node != l.Node || t.Device != l.Device || !t.State.Active():
			bad("lease %q: held by task %s attempt %d, which is %+v", k, l.Task, l.Attempt, t)
		}
	}
	for id, t := range s.Tasks {
		if t.Device != "" && s.Leases[LeaseKey(t.Node, t.Device)] == nil {
			bad("task %s holds device %s of %s without a lease", id, t.Device, t.Node)
		}
	}
	for k, r := range s.Rigs {
		if k != RigKey(r.Node, r.Topic) || r.InfraStreak < 0 {
			bad("rig %q: %+v", k, r)
		}
	}
	for id, j := range s.Jobs {
		if !sortedSet(j.LogRefs) {
			bad("job %s: log refs %v not a sorted set", id, j.LogRefs)
		}
		for _, h := range j.LogRefs {
			if b := s.Blobs[h]; b == nil || !slices.Contains(b.Jobs, id) {
				bad("job %s: log ref %s unknown or not linked back", id, h)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}
