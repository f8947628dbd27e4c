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
