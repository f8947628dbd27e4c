package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// A worker that dies mid-task: its attempt goes back to the queue and runs
// elsewhere as attempt 2; the job passes on that attempt.
func TestDeadWorkerTaskRunsElsewhere(t *testing.T) {
	fakes := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		if i > 0 {
			c.Topics = []node.Topic{{Name: "work"}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"x"}, Key: "dead-worker"})
	if err != nil {
		t.Fatal(err)
	}
	var first string
	m.WaitFor(10*time.Second, "the task running", func() (bool, string) {
		d, err := m.Client(0).Job(ctx, res.Job, 0, 0)
		if err != nil || d.Tasks[0].State != raftfsm.TaskRunning {
			return false, fmt.Sprint(d.Tasks, err)
		}
		first = d.Tasks[0].Node
		return true, ""
	})
	victim, survivor := 1, 2
	if first == "node2" {
		victim, survivor = 2, 1
	}
	m.Nodes[victim].Kill()
	start := time.Now()
	p, err := fakes[survivor].Await(ctx, 0)
	if err != nil {
		t.Fatalf("the task never reached the surviving worker: %v", err)
	}
	t.Logf("reassigned %s after the worker died", time.Since(start).Round(time.Millisecond))
	if got := envOf(p.Spec.Env, "OURCI_ATTEMPT"); got != "2" {
		t.Errorf("OURCI_ATTEMPT on the survivor: got %q, want 2", got)
	}
	p.Finish(0)
	d := m.WaitJob(0, res.Job, 30*time.Second)
	task := d.Tasks[0]
	if d.Job.Status != raftfsm.StatusPassed || task.Attempt != 2 || task.Node != fmt.Sprintf("node%d", survivor) {
		t.Errorf("got job %s, task attempt %d on %s; want passed, attempt 2 on node%d", d.Job.Status, task.Attempt, task.Node, survivor)
	}
}

func envOf(env []string, k string) string {
	for _, kv := range env {
		if len(kv) > len(k) && kv[:len(k)+1] == k+"=" {
			return kv[len(k)+1:]
		}
	}
	return ""
}

// gossipCut cuts one node's gossip, both ways, and nothing else: its Raft
// and peer API stay up, like a node whose CPU a build saturates so that
// it misses its gossip probes.
type gossipCut struct {
	mu     sync.Mutex
	addrs  map[string]string // gossip address → node name
	victim string
}

func (g *gossipCut) Cut(from, to string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	name, gossip := g.addrs[to]
	return g.victim != "" && gossip && (from == g.victim || name == g.victim)
}

func (g *gossipCut) set(victim string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.victim = victim
}

// A node that gossip drops while it still answers at its peer port keeps
// its attempt: the leader asks it before requeueing, so the task is not
// run twice; once gossip heals the attempt ends there as attempt 1.
func TestGossipLossOfANodeThatAnswersKeepsItsAttempt(t *testing.T) {
	fakes := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	cut := &gossipCut{addrs: map[string]string{}}
	started := time.Now()
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor, c.Faults = fakes[i], cut
		if i > 0 {
			c.Topics = []node.Topic{{Name: "work"}}
		}
	})
	for _, n := range m.Nodes {
		cut.mu.Lock()
		cut.addrs[n.GossipAddr()] = n.Name()
		cut.mu.Unlock()
	}
	if l := m.Leader(); l != 0 {
		t.Fatalf("the test needs node0 (no topic) to lead; %s does", m.Nodes[l].Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"held"}})
	if err != nil {
		t.Fatal(err)
	}
	var on string
	m.WaitFor(10*time.Second, "the task running", func() (bool, string) {
		d, err := m.Client(0).Job(ctx, res.Job, 0, 0)
		if err != nil || d.Tasks[0].State != raftfsm.TaskRunning {
			return false, fmt.Sprint(d.Tasks, err)
		}
		on = d.Tasks[0].Node
		return true, ""
	})
	victim, survivor := 1, 2
	if on == m.Nodes[2].Name() {
		victim, survivor = 2, 1
	}
	held, err := fakes[victim].Await(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A leader counts absence only once its gossip ran 5 s (lossGrace).
	m.WaitFor(30*time.Second, "the leader's startup grace for absence over", func() (bool, string) {
		return time.Since(started) > 6*time.Second, fmt.Sprintf("%v since the mesh started", time.Since(started).Round(time.Millisecond))
	})
	cut.set(m.Nodes[victim].Name())
	m.WaitFor(30*time.Second, "the leader's gossip to list "+m.Nodes[victim].Name()+" as gone", func() (bool, string) {
		for _, mb := range m.Nodes[0].Status().Members {
			if mb.Name == m.Nodes[victim].Name() {
				return !mb.Alive, fmt.Sprintf("alive %v", mb.Alive)
			}
		}
		return true, "not listed"
	})
	// Ledger changes wake the loss duty: a task run meanwhile on the other
	// worker makes several while the victim is gone from gossip.
	probe, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"probe"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := fakes[survivor].Await(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := envOf(p.Spec.Env, "OURCI_TASK"); got != probe.Task {
		t.Fatalf("the other worker's first task: got %s, want the probe %s (the held task came to it: requeued)", got, probe.Task)
	}
	p.Finish(0)
	m.WaitJob(0, probe.Job, 30*time.Second)
	d, err := m.Client(0).Job(ctx, res.Job, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tk := d.Tasks[0]; tk.Attempt != 1 || tk.State != raftfsm.TaskRunning || tk.Node != m.Nodes[victim].Name() {
		t.Fatalf("while gossip lists %s as gone but it answers: got attempt %d %s on %s, want attempt 1 still running there",
			m.Nodes[victim].Name(), tk.Attempt, tk.State, tk.Node)
	}
	cut.set("")
	held.Finish(0)
	d = m.WaitJob(0, res.Job, 30*time.Second)
	if tk := d.Tasks[0]; d.Job.Status != raftfsm.StatusPassed || tk.Attempt != 1 || tk.Node != m.Nodes[victim].Name() {
		t.Errorf("after gossip healed: got job %s, attempt %d on %s; want passed, attempt 1 on %s", d.Job.Status, tk.Attempt, tk.Node, m.Nodes[victim].Name())
	}
}
