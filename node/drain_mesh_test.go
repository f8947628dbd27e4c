package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// Draining a voter: it takes no new task, its running task finishes, it
// leaves Raft and gossip, and the non-voter is promoted in its place.
func TestDrainHandsOverCleanly(t *testing.T) {
	fake := executor.NewFake()
	const drained = 2
	m := nodetest.Start(t, 6, func(i int, c *node.Config) {
		if i == drained {
			c.Topics, c.Executor = []node.Topic{{Name: "work"}}, fake
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"a"}, Key: "first"})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := fake.Await(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	drainErr := make(chan error, 1)
	go func() { drainErr <- m.Nodes[drained].Drain(ctx) }()

	m.WaitFor(10*time.Second, "the leader to see the node draining", func() (bool, string) {
		for _, mb := range m.Nodes[m.Leader()].Status().Members {
			if mb.Name == fmt.Sprintf("node%d", drained) && mb.Draining {
				return true, ""
			}
		}
		return false, "not draining yet"
	})
	second, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"b"}, Key: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := m.Client(0).Job(ctx, second.Job, 0, 0); err != nil || d.Tasks[0].State != raftfsm.TaskQueued || d.Tasks[0].Waiting != "no node subscribes to work" {
		t.Fatalf("a task spawned while the only subscriber drains: got %+v (%v), want queued: no node subscribes to work", d.Tasks, err)
	}
	select {
	case err := <-drainErr:
		t.Fatalf("drain returned before the running task ended: %v", err)
	default:
	}
	proc.Finish(0)
	if err := <-drainErr; err != nil {
		t.Fatalf("drain: %v", err)
	}
	select {
	case <-m.Nodes[drained].Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the drained node did not shut down")
	}
	if d := m.WaitJob(0, first.Job, 10*time.Second); d.Job.Status != raftfsm.StatusPassed {
		t.Errorf("the running task's job: got %s, want passed", d.Job.Status)
	}
	m.WaitFor(20*time.Second, "5 voters among the 5 remaining nodes", func() (bool, string) {
		st := m.Nodes[0].Status()
		voters, members := 0, 0
		for _, mb := range st.Members {
			if mb.Name == fmt.Sprintf("node%d", drained) {
				return false, "the drained node is still listed: " + mb.Raft
			}
			members++
			if mb.Raft == "voter" {
				voters++
			}
		}
		return voters == 5 && members == 5, fmt.Sprintf("%d voters of %d members", voters, members)
	})
}
