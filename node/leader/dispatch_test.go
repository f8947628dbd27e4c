package leader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// fakeRaft stands in for Raft under a dispatcher: entries wait, proposed
// and unapplied, until the test applies them in order to a real ledger.
type fakeRaft struct {
	t        *testing.T
	fsm      *raftfsm.FSM
	proposed chan *fakeFuture

	mu       sync.Mutex
	index    uint64
	unlanded int // proposed and not yet applied
	maxUp    int // the most ever unapplied at once
}

type fakeFuture struct {
	cmd  raftfsm.Command
	data []byte
	done chan struct{}
	resp any
	idx  uint64
	err  error
}

func (f *fakeFuture) Error() error  { <-f.done; return f.err }
func (f *fakeFuture) Index() uint64 { return f.idx }
func (f *fakeFuture) Response() any { return f.resp }

func (r *fakeRaft) propose(b []byte) raft.ApplyFuture {
	c, err := raftfsm.Decode(b)
	if err != nil {
		r.t.Errorf("dispatcher proposed an entry that does not decode: %v", err)
	}
	f := &fakeFuture{cmd: c, data: b, done: make(chan struct{})}
	r.mu.Lock()
	r.unlanded++
	r.maxUp = max(r.maxUp, r.unlanded)
	r.mu.Unlock()
	r.proposed <- f
	return f
}

// next waits for the dispatcher's next proposal.
func (r *fakeRaft) next() *fakeFuture {
	r.t.Helper()
	select {
	case f := <-r.proposed:
		return f
	case <-time.After(10 * time.Second):
		r.t.Fatal("no entry proposed within 10 s")
		return nil
	}
}

// apply commits and applies f to the ledger, as Raft would, and answers it.
func (r *fakeRaft) apply(f *fakeFuture) {
	r.mu.Lock()
	r.index++
	f.idx = r.index
	r.unlanded--
	r.mu.Unlock()
	f.resp = r.fsm.Apply(&raft.Log{Index: f.idx, Type: raft.LogCommand, Data: f.data})
	close(f.done)
}

// fail answers f with err, as Raft does when leadership is lost.
func (r *fakeRaft) fail(f *fakeFuture, err error) {
	r.mu.Lock()
	r.unlanded--
	r.mu.Unlock()
	f.err = err
	close(f.done)
}

type testMesh struct {
	mu      sync.Mutex
	members []gossip.Member
}

func (m *testMesh) set(ms ...gossip.Member) {
	m.mu.Lock()
	m.members = ms
	m.mu.Unlock()
}

func (m *testMesh) get() []gossip.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.members)
}

func member(name string, slots int, topics ...string) gossip.Member {
	return gossip.Member{Name: name, Meta: gossip.Meta{Slots: slots, Topics: slices.Sorted(slices.Values(topics))}}
}

// startDispatcher runs a dispatcher of the given depth over a fake Raft.
func startDispatcher(t *testing.T, depth int, mesh *testMesh) (*Dispatcher, *fakeRaft) {
	d, fr, _, _ := startDispatcherCtl(t, depth, mesh)
	return d, fr
}

// startDispatcherCtl is startDispatcher, also returning the func that ends
// its leadership and a channel closed once run returned.
func startDispatcherCtl(t *testing.T, depth int, mesh *testMesh) (*Dispatcher, *fakeRaft, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fsm := raftfsm.NewFSM()
	fr := &fakeRaft{t: t, fsm: fsm, proposed: make(chan *fakeFuture, 16)}
	d := NewDispatcher(DispatcherConfig{Propose: fr.propose, Members: mesh.get, Ledger: fsm, Clock: clock.Real{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stopping: ctx.Done(), Depth: depth})
	stopped := make(chan struct{})
	go func() { d.Run(ctx); close(stopped) }()
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case <-stopped:
				return
			case f := <-fr.proposed:
				fr.apply(f)
			case <-time.After(10 * time.Second):
				t.Error("dispatcher did not stop within 10 s")
				return
			}
		}
	})
	return d, fr, cancel, stopped
}

type submitted struct {
	res raftfsm.Result
	err error
}

// spawnAsync submits a spawn of a new job and returns where its outcome
// will arrive.
func spawnAsync(d *Dispatcher, i int, topic string) <-chan submitted {
	out := make(chan submitted, 1)
	c := raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{
		Task: fmt.Sprintf("task%d", i), Job: fmt.Sprintf("job%d", i), Topic: topic, Args: []string{"true"},
		NewJob: &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)},
	}}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := d.Submit(ctx, c)
		out <- submitted{res, err}
	}()
	return out
}

func wantOutcome(t *testing.T, ch <-chan submitted) raftfsm.Result {
	t.Helper()
	select {
	case s := <-ch:
		if s.err != nil || s.res.Err != nil {
			t.Fatalf("submit: got error %v / %v, want none", s.err, s.res.Err)
		}
		return s.res
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome within 10 s")
		return raftfsm.Result{}
	}
}

// TestDispatcherPipelines: spawns proposed one after the other go out as
// separate entries while the earlier ones are still unapplied, up to the
// dispatcher's depth, and every choice counts the slots those entries
// take: no node is given more tasks than it has slots.
func TestDispatcherPipelines(t *testing.T) {
	tests := []struct {
		name    string
		depth   int
		members []gossip.Member
		want    []string // node each spawn is assigned to, in order; "" stays queued
	}{
		{"one in flight (the old dispatcher)", 1, []gossip.Member{member("a", 1, "t"), member("b", 1, "t")}, []string{"a", "b", ""}},
		{"two in flight, a slot on each of two nodes", 2, []gossip.Member{member("a", 1, "t"), member("b", 1, "t")}, []string{"a", "b", ""}},
		{"two in flight, two slots on one node", 2, []gossip.Member{member("a", 2, "t")}, []string{"a", "a", "", ""}},
		{"three in flight, three nodes", 3, []gossip.Member{member("a", 1, "t"), member("b", 1, "t"), member("c", 1, "t")}, []string{"a", "b", "c", "", ""}},
		{"two in flight, uneven slots", 2, []gossip.Member{member("a", 1, "t"), member("b", 3, "t")}, []string{"a", "b", "b", "b", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mesh := &testMesh{}
			mesh.set(tc.members...)
			d, fr := startDispatcher(t, tc.depth, mesh)
			var flying []*fakeFuture
			var outs []<-chan submitted
			for i, want := range tc.want {
				outs = append(outs, spawnAsync(d, i, "t"))
				if len(flying) == tc.depth {
					fr.apply(flying[0]) // the next entry must wait for this one
					flying = flying[1:]
				}
				f := fr.next()
				if got := f.cmd.Spawn; got == nil || got.Task != fmt.Sprintf("task%d", i) {
					t.Fatalf("entry %d: got %+v, want the spawn of task%d alone", i, f.cmd, i)
				}
				if got := f.cmd.Spawn.Assign; got != want {
					t.Errorf("spawn %d assigned to %q, want %q (%d entries unapplied)", i, got, want, len(flying))
				}
				flying = append(flying, f)
			}
			for _, f := range flying {
				fr.apply(f)
			}
			for i, ch := range outs {
				if res := wantOutcome(t, ch); res.Task != fmt.Sprintf("task%d", i) {
					t.Errorf("spawn %d answered with task %q, want task%d", i, res.Task, i)
				}
			}
			if fr.maxUp != tc.depth {
				t.Errorf("entries unapplied at once: got at most %d, want %d", fr.maxUp, tc.depth)
			}
			fr.fsm.Read(func(s *raftfsm.State, _ uint64) {
				for _, m := range tc.members {
					if got := s.Load(m.Name); got > m.Meta.Slots {
						t.Errorf("node %s runs %d tasks, want at most its %d slots", m.Name, got, m.Meta.Slots)
					}
				}
			})
		})
	}
}

// TestDispatcherQueuedOnceInFlight: a queued task assigned by an entry in
// flight is neither assigned again by the next entry nor its slot handed
// to another task.
func TestDispatcherQueuedOnceInFlight(t *testing.T) {
	mesh := &testMesh{}
	mesh.set(member("a", 1, "t"))
	d, fr := startDispatcher(t, 2, mesh)

	// Task 0 waits: nobody serves topic u yet.
	out0 := spawnAsync(d, 0, "u")
	f := fr.next()
	if got := f.cmd.Spawn.Assign; got != "" {
		t.Fatalf("spawn 0 assigned to %q, want queued", got)
	}
	fr.apply(f)
	wantOutcome(t, out0)

	// Now a serves u (one slot) and b too (one slot): the queue is handed out.
	mesh.set(member("a", 1, "t", "u"), member("b", 1, "u"))
	d.Kick()
	f1 := fr.next()
	if f1.cmd.Type != raftfsm.CmdAssign || len(f1.cmd.Assign.Items) != 1 || f1.cmd.Assign.Items[0].Task != "task0" {
		t.Fatalf("entry 1: got %+v, want the assignment of task0", f1.cmd)
	}
	first := f1.cmd.Assign.Items[0].Node

	// While it is in flight: another kick and a spawn on u.
	d.Kick()
	out1 := spawnAsync(d, 1, "u")
	f2 := fr.next()
	var spawn *raftfsm.Spawn
	for _, c := range append([]raftfsm.Command{f2.cmd}, f2.cmd.Batch...) {
		switch c.Type {
		case raftfsm.CmdAssign:
			t.Errorf("entry 2 assigns %+v again while entry 1 is in flight", c.Assign.Items)
		case raftfsm.CmdSpawn:
			spawn = c.Spawn
		}
	}
	if spawn == nil {
		t.Fatalf("entry 2: got %+v, want the spawn of task1", f2.cmd)
	}
	other := map[string]string{"a": "b", "b": "a"}[first]
	if spawn.Assign != other {
		t.Errorf("task1 assigned to %q, want %q (task0 takes %s's slot in flight)", spawn.Assign, other, first)
	}
	fr.apply(f1)
	fr.apply(f2)
	wantOutcome(t, out1)
	fr.fsm.Read(func(s *raftfsm.State, _ uint64) {
		if got := s.Tasks["task0"]; got.State != raftfsm.TaskAssigned || got.Node != first {
			t.Errorf("task0: got %s on %q, want assigned on %s", got.State, got.Node, first)
		}
		if got := s.Tasks["task1"]; got.State != raftfsm.TaskAssigned || got.Node != other {
			t.Errorf("task1: got %s on %q, want assigned on %s", got.State, got.Node, other)
		}
	})
}

// TestDispatcherLeadershipLost: when leadership ends with entries in flight
// and requests queued, every proposal gets an answer (the in-flight ones
// Raft's error, the queued ones ErrNotLeader) and run returns.
func TestDispatcherLeadershipLost(t *testing.T) {
	mesh := &testMesh{}
	mesh.set(member("a", 4, "t"))
	d, fr, lose, stopped := startDispatcherCtl(t, 2, mesh)
	var outs []<-chan submitted
	var flying []*fakeFuture
	for i := range 2 {
		outs = append(outs, spawnAsync(d, i, "t"))
		flying = append(flying, fr.next())
	}
	// A third waits for a free place in the pipeline.
	outs = append(outs, spawnAsync(d, 2, "t"))
	wait.For(t, 10*time.Second, "the third spawn to be queued", func() (bool, string) {
		return len(d.reqs) > 0, "the queue is empty"
	})
	lose()
	for _, f := range flying {
		fr.fail(f, raft.ErrLeadershipLost)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of losing leadership")
	}
	for i, ch := range outs {
		select {
		case s := <-ch:
			if !errors.Is(s.err, ErrNotLeader) {
				t.Errorf("spawn %d: got %v, want ErrNotLeader", i, s.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("spawn %d: no answer within 10 s", i)
		}
	}
}
