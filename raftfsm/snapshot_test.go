package raftfsm

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var update = flag.Bool("update", false, "regenerate testdata/snapshot-v1.jsonl")

// richCommands builds a ledger with open and closed jobs, queued, assigned,
// running and finished tasks (with exit codes), a requeued attempt, and
// idempotency keys. Each element is one log entry.
func richCommands() []Command {
	withKey := func(c Command, k string) Command { c.Spawn.Key = k; return c }
	withAssign := func(c Command, n string) Command { c.Spawn.Assign = n; return c }
	full := spawnChild("j1", "a", "r1")
	full.Spawn.Image = "golang:1.26"
	full.Spawn.Env = []string{"GOFLAGS=-race", "CI=true"}
	full.Spawn.Timeout = 10 * time.Minute
	failed := finished("b", 1, "n1", TaskFailed, intp(3))
	failed.TaskFinished.Error = "exit status 3"
	return []Command{
		withKey(spawnRoot("j1", "r1"), "k-j1"),
		full,
		spawnChild("j1", "b", "r1"),
		spawnChild("j1", "c", "a"),
		assign(
			Assignment{Task: "r1", Attempt: 1, Node: "n1"},
			Assignment{Task: "a", Attempt: 1, Node: "n2"},
			Assignment{Task: "b", Attempt: 1, Node: "n1"},
		),
		started("r1", 1, "n1"),
		started("a", 1, "n2"),
		finished("a", 1, "n2", TaskPassed, intp(0)),
		failed,
		withAssign(spawnRoot("j2", "r2"), "n3"),
		started("r2", 1, "n3"),
		finished("r2", 1, "n3", TaskPassed, intp(0)),
		spawnRoot("j3", "r3"),
		closeJob("j3", ReasonTimedOut),
		batch(
			withKey(spawnRoot("j4", "r4"), "k-j4"),
			withKey(spawnChild("j4", "d", "r4"), "k-d"),
			assign(Assignment{Task: "r4", Attempt: 1, Node: "n2"}),
		),
		requeue("r4", 1, 5),
		spawnRoot("j5", "r5"),
		assign(Assignment{Task: "r5", Attempt: 1, Node: "n4"}),
		finished("r5", 1, "n4", TaskTimedOut, intp(-1)),
		assign(Assignment{Task: "c", Attempt: 1, Node: "n5"}),
		blobAdded(blobHash(1), 100, "n1", "j1", "logs"),
		blobAdded(blobHash(1), 100, "n2", "", ""),
		blobAdded(blobHash(2), 200, "n1", "j4", "bin"),
		blobAdded(blobHash(3), 300, "n3", "", ""),
		blobDropped(blobHash(3), "n3"),
		blobAdded(blobHash(4), 0, "n4", "", ""),
		expire([]string{"j3"}, []string{blobHash(4)}),
	}
}

func richLedger(t testing.TB) *ledger {
	t.Helper()
	l := newLedger(t)
	for _, c := range richCommands() {
		l.ok(c)
	}
	checkInvariants(t, l.s)
	return l
}

// sameLedger compares everything a reader can observe of two ledgers.
func sameLedger(t testing.TB, got, want *State) {
	t.Helper()
	if got.Hash() != want.Hash() {
		t.Errorf("Hash: got %x, want %x", got.Hash(), want.Hash())
	}
	if !slices.Equal(got.JobOrder, want.JobOrder) {
		t.Errorf("JobOrder: got %v, want %v", got.JobOrder, want.JobOrder)
	}
	if g, w := taskIDs(got.Queued()), taskIDs(want.Queued()); !slices.Equal(g, w) {
		t.Errorf("Queued: got %v, want %v", g, w)
	}
	if g, w := got.ActiveNodes(), want.ActiveNodes(); !slices.Equal(g, w) {
		t.Errorf("ActiveNodes: got %v, want %v", g, w)
	}
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if g, w := taskIDs(got.Active(n)), taskIDs(want.Active(n)); !slices.Equal(g, w) {
			t.Errorf("Active(%s): got %v, want %v", n, g, w)
		}
		if g, w := got.Load(n), want.Load(n); g != w {
			t.Errorf("Load(%s): got %d, want %d", n, g, w)
		}
	}
	if g, w := jobIDs(got.OpenJobs()), jobIDs(want.OpenJobs()); !slices.Equal(g, w) {
		t.Errorf("OpenJobs: got %v, want %v", g, w)
	}
	if g, w := jobIDs(got.RecentJobs(100)), jobIDs(want.RecentJobs(100)); !slices.Equal(g, w) {
		t.Errorf("RecentJobs: got %v, want %v", g, w)
	}
	if g, w := fmt.Sprint(got.Keys), fmt.Sprint(want.Keys); g != w {
		t.Errorf("Keys: got %v, want %v", g, w)
	}
	if g, w := fmt.Sprint(got.BlobUsage()), fmt.Sprint(want.BlobUsage()); g != w {
		t.Errorf("BlobUsage: got %v, want %v", g, w)
	}
	if g, w := slices.Sorted(maps.Keys(got.Blobs)), slices.Sorted(maps.Keys(want.Blobs)); !slices.Equal(g, w) {
		t.Errorf("Blobs: got %v, want %v", g, w)
	}
	for id, j := range want.Jobs {
		for name, h := range j.Blobs {
			if b, ok := got.ResolveBlob(id, name); !ok || b.Hash != h {
				t.Errorf("ResolveBlob(%s, %s): got %v %v, want %s", id, name, b, ok, h)
			}
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	l := richLedger(t)
	// The rich ledger covers what it claims to.
	var states []string
	for _, tk := range l.s.Tasks {
		states = append(states, string(tk.State))
	}
	slices.Sort(states)
	states = slices.Compact(states)
	if want := []string{"assigned", "cancelled", "failed", "passed", "queued", "running", "timed_out"}; !slices.Equal(states, want) {
		t.Fatalf("rich ledger task states: got %v, want %v", states, want)
	}
	if got := jobIDs(l.s.OpenJobs()); !slices.Equal(got, []string{"j1", "j4"}) {
		t.Fatalf("rich ledger open jobs: got %v, want [j1 j4]", got)
	}
	if got := len(l.s.Blobs); got != 3 || !l.job("j3").Expired || len(l.job("j1").Blobs) != 1 {
		t.Fatalf("rich ledger blobs: got %d blobs, j3 expired=%v, j1 names %v; want 3, true, one name", got, l.job("j3").Expired, l.job("j1").Blobs)
	}

	b := snapshotBytes(t, l.s, 42)
	r, idx, err := ReadSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ReadSnapshot: got error %v, want nil", err)
	}
	if idx != 42 {
		t.Errorf("index: got %d, want 42", idx)
	}
	sameLedger(t, r, l.s)
	checkInvariants(t, r)
	if got := *r.Tasks["b"].ExitCode; got != 3 {
		t.Errorf("b exit code: got %d, want 3", got)
	}
	if got := r.Tasks["a"]; got.Timeout != 10*time.Minute || !slices.Equal(got.Env, []string{"GOFLAGS=-race", "CI=true"}) || got.Image != "golang:1.26" {
		t.Errorf("a: got timeout %v env %v image %q, want 10m env [GOFLAGS=-race CI=true] image golang:1.26", got.Timeout, got.Env, got.Image)
	}
	// Writing the restored ledger gives the same bytes: the format is canonical.
	if b2 := snapshotBytes(t, r, 42); !bytes.Equal(b2, b) {
		t.Errorf("snapshot of the restored ledger differs:\ngot  %s\nwant %s", b2, b)
	}
	// Map order never reaches the stream.
	for i := range 5 {
		if b2 := snapshotBytes(t, l.s, 42); !bytes.Equal(b2, b) {
			t.Fatalf("write %d: snapshot bytes differ from the first write", i)
		}
	}
	// The restored ledger keeps working like the original.
	more := []Command{
		spawnChild("j1", "e", "c"),
		finished("r1", 1, "n1", TaskPassed, intp(0)),
		assign(Assignment{Task: "r4", Attempt: 2, Node: "n5"}),
		closeJob("j4", ReasonCancelled),
	}
	for i, c := range more {
		idx := uint64(100 + i)
		want := l.s.Apply(idx, wire(t, c))
		got := r.Apply(idx, wire(t, c))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("apply %v after restore: got %+v, want %+v", c.Type, got, want)
		}
	}
	sameLedger(t, r, l.s)
	checkInvariants(t, r)
}

// TestSnapshotKeepsJobOrder: jobs opened by one batch entry share a Raft
// index. The live ledger orders them by (index, ID); a restored one must
// order them the same way, or RecentJobs differs between a replica that
// applied the log and one that installed a snapshot.
func TestSnapshotKeepsJobOrder(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-m", "rm"))
	l.ok(batch(spawnRoot("job-z", "rz"), spawnRoot("job-b", "rb")))
	l.ok(spawnRoot("job-a", "ra"))
	if want := []string{"job-m", "job-b", "job-z", "job-a"}; !slices.Equal(l.s.JobOrder, want) {
		t.Fatalf("live JobOrder: got %v, want %v", l.s.JobOrder, want)
	}
	r := restore(t, l.s, l.idx)
	if !slices.Equal(r.JobOrder, l.s.JobOrder) {
		t.Errorf("restored JobOrder: got %v, want %v", r.JobOrder, l.s.JobOrder)
	}
	if g, w := jobIDs(r.RecentJobs(4)), jobIDs(l.s.RecentJobs(4)); !slices.Equal(g, w) {
		t.Errorf("restored RecentJobs: got %v, want %v", g, w)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	closed    bool
	cancelled bool
	failWrite error
}

func (s *memSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.buf.Write(p)
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	return nil
}

func (s *memSink) ID() string { return "mem" }

var _ raft.SnapshotSink = (*memSink)(nil)

// fsmApply feeds c to f as the raft log entry at idx.
func fsmApply(t testing.TB, f *FSM, idx uint64, c Command) Result {
	t.Helper()
	out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: idx, Data: mustEncode(t, c)})
	r, ok := out.(Result)
	if !ok {
		t.Fatalf("FSM.Apply: got %T, want Result", out)
	}
	return r
}

func fsmHash(f *FSM) (h [32]byte, idx uint64) {
	f.Read(func(s *State, i uint64) { h, idx = s.Hash(), i })
	return h, idx
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := NewFSM()
	for i, c := range richCommands() {
		if err := resultErr(fsmApply(t, f, uint64(i+1), c)); err != nil {
			t.Fatalf("entry %d: got error %v, want nil", i+1, err)
		}
	}
	wantHash, wantIdx := fsmHash(f)
	if want := uint64(len(richCommands())); wantIdx != want {
		t.Fatalf("FSM index: got %d, want %d", wantIdx, want)
	}
	if l := richLedger(t); wantHash != l.s.Hash() {
		t.Fatalf("FSM hash: got %x, want the ledger's %x", wantHash, l.s.Hash())
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: got error %v, want nil", err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink: got closed=%v cancelled=%v, want closed and not cancelled", sink.closed, sink.cancelled)
	}

	g := NewFSM()
	_, ch := g.Watch()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.buf.Bytes()))); err != nil {
		t.Fatalf("Restore: got error %v, want nil", err)
	}
	gotHash, gotIdx := fsmHash(g)
	if gotHash != wantHash || gotIdx != wantIdx {
		t.Fatalf("restored FSM: got hash %x index %d, want %x %d", gotHash[:6], gotIdx, wantHash[:6], wantIdx)
	}
	if g.Index() != wantIdx {
		t.Errorf("restored Index(): got %d, want %d", g.Index(), wantIdx)
	}
	select {
	case <-ch:
	default:
		t.Errorf("Watch channel after Restore: still open, want closed")
	}
	g.Read(func(s *State, _ uint64) {
		f.Read(func(w *State, _ uint64) { sameLedger(t, s, w) })
	})
}

// TestFSMSnapshotIsolated takes a snapshot, then keeps applying entries that
// append to the same jobs and tasks while Persist runs; the persisted stream
// must be the ledger as it was when Snapshot was called (and -race must see
// no shared writes).
func TestFSMSnapshotIsolated(t *testing.T) {
	f := NewFSM()
	cmds := richCommands()
	for i, c := range cmds {
		fsmApply(t, f, uint64(i+1), c)
	}
	wantHash, wantIdx := fsmHash(f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}

	sink := &memSink{}
	done := make(chan error, 1)
	start := make(chan struct{})
	go func() {
		<-start
		done <- snap.Persist(sink)
	}()
	idx := wantIdx
	next := func(c Command) {
		idx++
		if err := resultErr(fsmApply(t, f, idx, c)); err != nil {
			t.Fatalf("entry %d: got error %v, want nil", idx, err)
		}
	}
	close(start)
	for i := range 200 {
		next(spawnChild("j1", fmt.Sprintf("x%03d", i), "r1"))
		next(spawnChild("j4", fmt.Sprintf("y%03d", i), "d"))
	}
	for i := range 50 {
		next(blobAdded(blobHash(1), 100, fmt.Sprintf("h%02d", i), "j1", fmt.Sprintf("name-%02d", i)))
		next(blobAdded(blobHash(100+i), int64(i), "n1", "j4", "bin"))
	}
	next(blobDropped(blobHash(1), "n1"))
	next(finished("r1", 1, "n1", TaskFailed, intp(9)))
	next(closeJob("j1", ReasonCancelled))
	next(expire([]string{"j1"}, []string{blobHash(1)}))
	next(assign(Assignment{Task: "r4", Attempt: 2, Node: "n1"}))

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Persist: got error %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Persist: still running after 10s")
	}
	s, gotIdx, err := ReadSnapshot(bytes.NewReader(sink.buf.Bytes()))
	if err != nil {
		t.Fatalf("ReadSnapshot: got error %v, want nil", err)
	}
	if gotIdx != wantIdx || s.Hash() != wantHash {
		t.Fatalf("persisted snapshot: got index %d hash %x, want %d %x", gotIdx, s.Hash(), wantIdx, wantHash)
	}
	if h, _ := fsmHash(f); h == wantHash {
		t.Fatalf("live FSM hash unchanged after more entries, want it to move on")
	}
}

func TestFSMPersistError(t *testing.T) {
	f := NewFSM()
	fsmApply(t, f, 1, spawnRoot("j1", "r1"))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: got error %v, want nil", err)
	}
	boom := errors.New("disk full")
	sink := &memSink{failWrite: boom}
	err = snap.Persist(sink)
	if !errors.Is(err, boom) {
		t.Errorf("Persist: got error %v, want %v", err, boom)
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink: got cancelled=%v closed=%v, want cancelled and not closed", sink.cancelled, sink.closed)
	}
}

func TestReadSnapshotCorrupt(t *testing.T) {
	valid := snapshotBytes(t, richLedger(t).s, 7)
	lines := bytes.SplitAfter(valid, []byte("\n"))
	header := string(lines[0])
	lastLine := lines[len(lines)-2] // SplitAfter leaves an empty last element
	cut := len(valid) - len(lastLine)/2
	jobLine := func(id string) string {
		return fmt.Sprintf(`{"job":{"id":%q,"state":"open","status":"pending","root":"r","tasks":["r"],"index":1,"open":1}}`+"\n", id)
	}

	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"not json", "hello world\n"},
		{"header is an array", "[1,2,3]\n"},
		{"header is a string", `"ourci-ledger"` + "\n"},
		{"wrong format", `{"format":"other-ledger","version":1,"index":1}` + "\n"},
		{"no format", `{"version":1,"index":1}` + "\n"},
		{"version 99", `{"format":"ourci-ledger","version":99,"index":1}` + "\n"},
		{"version 0", `{"format":"ourci-ledger","version":0,"index":1}` + "\n"},
		{"negative version", `{"format":"ourci-ledger","version":-1,"index":1}` + "\n"},
		{"truncated header", header[:len(header)/2]},
		{"truncated line", string(valid[:cut])},
		{"task of unknown job", header + jobLine("j1") + `{"task":{"id":"t","job":"ghost","topic":"x","args":null,"state":"queued","attempt":1}}` + "\n"},
		{"empty record", header + jobLine("j1") + "{}\n"},
		{"null record", header + "null\n"},
		{"unknown record kind", header + `{"jobs":{"id":"j1"}}` + "\n"},
		{"record of wrong shape", header + `{"job":"j1"}` + "\n"},
		{"trailing garbage", string(valid) + "garbage"},
		{"a number", header + "42\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, idx, err := ReadSnapshot(strings.NewReader(tt.in))
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("ReadSnapshot: got error %v, want %v", err, ErrSnapshot)
			}
			if s != nil || idx != 0 {
				t.Errorf("ReadSnapshot: got state %v index %d, want nil and 0", s != nil, idx)
			}

			// The FSM keeps its ledger when a restore fails.
			f := NewFSM()
			fsmApply(t, f, 1, spawnRoot("keep", "keep-root"))
			before, _ := fsmHash(f)
			if err := f.Restore(io.NopCloser(strings.NewReader(tt.in))); !errors.Is(err, ErrSnapshot) {
				t.Fatalf("FSM.Restore: got error %v, want %v", err, ErrSnapshot)
			}
			if after, idx := fsmHash(f); after != before || idx != 1 {
				t.Errorf("FSM after failed restore: got hash %x index %d, want %x 1", after[:6], idx, before[:6])
			}
		})
	}
}

// goldenCommands is the small hand-built ledger behind
// testdata/snapshot-v1.jsonl. Never change it: the file is frozen.
func goldenCommands() []Command {
	root := spawnRoot("job-a", "a-root")
	root.Spawn.Key = "push:aaa"
	fail := finished("a-build", 1, "n2", TaskFailed, intp(2))
	fail.TaskFinished.Error = "exit status 2"
	return []Command{
		root,                                     // 1
		spawnChild("job-a", "a-build", "a-root"), // 2
		assign( // 3
			Assignment{Task: "a-root", Attempt: 1, Node: "n1"},
			Assignment{Task: "a-build", Attempt: 1, Node: "n2"},
		),
		started("a-root", 1, "n1"),   // 4
		fail,                         // 5
		spawnRoot("job-b", "b-root"), // 6
		assign(Assignment{Task: "b-root", Attempt: 1, Node: "n1"}), // 7
		finished("b-root", 1, "n1", TaskPassed, intp(0)),           // 8
		spawnRoot("job-c", "c-root"),                               // 9
		closeJob("job-c", ReasonCancelled),                         // 10
		spawnRoot("job-d", "d-root"),                               // 11
		assign(Assignment{Task: "d-root", Attempt: 1, Node: "n3"}), // 12
		requeue("d-root", 1, 3),                                    // 13
	}
}

const goldenV1 = "testdata/snapshot-v1.jsonl"

// TestSnapshotV1Compat restores a snapshot written by format version 1 and
// checks its content. The file guards compatibility: new binaries must keep
// reading it. Regenerate only with -update, and only while the current
// format is version 1.
func TestSnapshotV1Compat(t *testing.T) {
	if *update {
		if snapshotVersion != 1 {
			t.Fatalf("%s is frozen at version 1; this binary writes version %d: add a new file instead", goldenV1, snapshotVersion)
		}
		l := newLedger(t)
		for _, c := range goldenCommands() {
			l.ok(c)
		}
		if err := os.MkdirAll(filepath.Dir(goldenV1), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenV1, snapshotBytes(t, l.s, l.idx), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenV1)
	}

	raw, err := os.ReadFile(goldenV1)
	if err != nil {
		t.Fatalf("read %s: got error %v, want nil (generate it with -update)", goldenV1, err)
	}
	s, idx, err := ReadSnapshot(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadSnapshot(%s): got error %v, want nil", goldenV1, err)
	}
	checkInvariants(t, s)
	if idx != 13 {
		t.Errorf("index: got %d, want 13", idx)
	}
	if want := []string{"job-a", "job-b", "job-c", "job-d"}; !slices.Equal(s.JobOrder, want) {
		t.Errorf("JobOrder: got %v, want %v", s.JobOrder, want)
	}
	for _, c := range []struct {
		id     string
		state  JobState
		status JobStatus
		reason string
		tasks  []string
		index  uint64
	}{
		{"job-a", JobOpen, StatusFailed, "task a-build failed", []string{"a-root", "a-build"}, 1},
		{"job-b", JobClosed, StatusPassed, "", []string{"b-root"}, 6},
		{"job-c", JobClosed, StatusError, ReasonCancelled, []string{"c-root"}, 9},
		{"job-d", JobOpen, StatusPending, "", []string{"d-root"}, 11},
	} {
		j := s.Jobs[c.id]
		if j == nil {
			t.Errorf("job %s: missing", c.id)
			continue
		}
		if j.State != c.state || j.Status != c.status || j.Reason != c.reason || !slices.Equal(j.Tasks, c.tasks) || j.Index != c.index {
			t.Errorf("job %s: got %s/%s reason %q tasks %v index %d, want %s/%s reason %q tasks %v index %d",
				c.id, j.State, j.Status, j.Reason, j.Tasks, j.Index, c.state, c.status, c.reason, c.tasks, c.index)
		}
	}
	if j := s.Jobs["job-a"]; j.Source.Repo != "ourci/ourci" || j.Trigger != "push" || !j.Deadline.Equal(at(3600)) || !j.CreatedAt.Equal(at(0)) {
		t.Errorf("job-a: got source %+v trigger %q deadline %v created %v", j.Source, j.Trigger, j.Deadline, j.CreatedAt)
	}
	if j := s.Jobs["job-b"]; !j.ClosedAt.Equal(at(4)) || j.Passed != 1 {
		t.Errorf("job-b: got closed at %v passed %d, want %v 1", j.ClosedAt, j.Passed, at(4))
	}
	for _, c := range []struct {
		id      string
		state   TaskState
		attempt int
		node    string
		exit    *int
		err     string
	}{
		{"a-root", TaskRunning, 1, "n1", nil, ""},
		{"a-build", TaskFailed, 1, "n2", intp(2), "exit status 2"},
		{"b-root", TaskPassed, 1, "n1", intp(0), ""},
		{"c-root", TaskCancelled, 1, "", nil, "job cancelled"},
		{"d-root", TaskQueued, 2, "", nil, "node gone"},
	} {
		tk := s.Tasks[c.id]
		if tk == nil {
			t.Errorf("task %s: missing", c.id)
			continue
		}
		if tk.State != c.state || tk.Attempt != c.attempt || tk.Node != c.node || tk.Error != c.err {
			t.Errorf("task %s: got %s attempt %d on %q error %q, want %s attempt %d on %q error %q",
				c.id, tk.State, tk.Attempt, tk.Node, tk.Error, c.state, c.attempt, c.node, c.err)
		}
		if (tk.ExitCode == nil) != (c.exit == nil) || (c.exit != nil && *tk.ExitCode != *c.exit) {
			t.Errorf("task %s exit code: got %v, want %v", c.id, fmtExit(tk.ExitCode), fmtExit(c.exit))
		}
	}
	if got := s.Tasks["a-build"]; got.Parent != "a-root" || !got.FinishedAt.Equal(at(4)) {
		t.Errorf("a-build: got parent %q finished %v, want a-root %v", got.Parent, got.FinishedAt, at(4))
	}
	if got := s.Tasks["a-root"].Children; !slices.Equal(got, []string{"a-build"}) {
		t.Errorf("a-root children: got %v, want [a-build]", got)
	}
	if got := fmt.Sprint(s.Keys); got != "map[push:aaa:a-root]" {
		t.Errorf("keys: got %s, want map[push:aaa:a-root]", got)
	}
	if got := taskIDs(s.Queued()); !slices.Equal(got, []string{"d-root"}) {
		t.Errorf("Queued: got %v, want [d-root]", got)
	}
	if got := taskIDs(s.Active("n1")); !slices.Equal(got, []string{"a-root"}) {
		t.Errorf("Active(n1): got %v, want [a-root]", got)
	}
	if got := s.ActiveNodes(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("ActiveNodes: got %v, want [n1]", got)
	}
	// The restored ledger accepts the next commands.
	if r := s.Apply(14, wire(t, assign(Assignment{Task: "d-root", Attempt: 2, Node: "n2"}))); r.Err != nil {
		t.Errorf("assign d-root attempt 2: got error %v, want nil", r.Err)
	}
	if r := s.Apply(15, wire(t, finished("a-root", 1, "n1", TaskPassed, intp(0)))); r.Err != nil {
		t.Errorf("finish a-root: got error %v, want nil", r.Err)
	}
	checkInvariants(t, s)
}

func fmtExit(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
