package leader

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// TestDispatcherStamps: the dispatcher is where a command gets its time,
// new IDs and the mesh's limits, whoever built it; what a caller set
// explicitly (an ID it must refer to, a limit of its own) is kept, and a
// caller's time is not.
func TestDispatcherStamps(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fsm := raftfsm.NewFSM()
	fr := &fakeRaft{t: t, fsm: fsm, proposed: make(chan *fakeFuture, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lim := Limits{MaxJobTasks: 7, MaxOpenJobs: 3, MaxJobBlobBytes: 1 << 20, MaxAttempts: 4, MaxInfra: 2}
	d := NewDispatcher(DispatcherConfig{Propose: fr.propose, Members: (&testMesh{}).get, Ledger: fsm, Clock: clock.NewManual(at),
		Limits: lim, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stopping: ctx.Done()})
	go d.Run(ctx)

	batch := raftfsm.Command{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{
		{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Topic: "t", Args: []string{}, NewJob: &raftfsm.NewJob{}, At: at.Add(-time.Hour)}},
		{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Job: "named", Topic: "t", Args: []string{}, NewJob: &raftfsm.NewJob{}, MaxOpenJobs: 9}},
		{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{Task: "x", Attempt: 1, Node: "n", State: raftfsm.TaskPassed}},
		{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: "h", Node: "n"}},
		{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{Task: "x", Attempt: 1, Infra: true}},
		{Type: raftfsm.CmdBlobDropped, BlobDropped: &raftfsm.BlobDropped{Hash: "h", Node: "n"}},
	}}
	done := make(chan submitted, 1)
	go func() {
		res, err := d.Submit(ctx, batch)
		done <- submitted{res, err}
	}()
	f := fr.next()
	fr.apply(f)
	res := wantOutcome(t, done)
	parts := f.cmd.Batch
	if len(parts) != len(batch.Batch) {
		t.Fatalf("proposed %d commands, want %d", len(parts), len(batch.Batch))
	}
	sp, named := parts[0].Spawn, parts[1].Spawn
	if len(sp.Task) != 12 || len(sp.Job) != 12 || sp.Task == sp.Job {
		t.Errorf("new spawn: got task %q job %q, want two fresh 12-digit IDs", sp.Task, sp.Job)
	}
	if got := res.Batch[0]; got.Task != sp.Task || got.Job != sp.Job {
		t.Errorf("result: got task %q job %q, want the stamped %q %q", got.Task, got.Job, sp.Task, sp.Job)
	}
	if named.Job != "named" || named.Task == "" || named.MaxOpenJobs != 9 || named.MaxJobTasks != 7 {
		t.Errorf("named spawn: got job %q task %q quotas %d/%d, want job named, a task ID, 7/9", named.Job, named.Task, named.MaxJobTasks, named.MaxOpenJobs)
	}
	if sp.MaxJobTasks != 7 || sp.MaxOpenJobs != 3 {
		t.Errorf("spawn quotas: got %d/%d, want 7/3", sp.MaxJobTasks, sp.MaxOpenJobs)
	}
	for _, c := range []struct {
		name string
		got  time.Time
	}{{"spawn", sp.At}, {"named spawn", named.At}, {"task_finished", parts[2].TaskFinished.At}, {"blob_added", parts[3].BlobAdded.At}, {"requeue", parts[4].Requeue.At}} {
		if !c.got.Equal(at) {
			t.Errorf("%s: got At %v, want the leader's %v", c.name, c.got, at)
		}
	}
	if got := parts[2].TaskFinished.MaxInfra; got != 2 {
		t.Errorf("task_finished MaxInfra: got %d, want 2", got)
	}
	if got := parts[3].BlobAdded.MaxJobBytes; got != 1<<20 {
		t.Errorf("blob_added MaxJobBytes: got %d, want %d", got, 1<<20)
	}
	if rq := parts[4].Requeue; rq.MaxAttempts != 4 || rq.MaxInfra != 2 {
		t.Errorf("requeue: got MaxAttempts %d MaxInfra %d, want 4 and 2", rq.MaxAttempts, rq.MaxInfra)
	}
}
