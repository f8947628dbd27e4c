package node_test

import (
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
)

// TestTopicsAndSlotsHonoured checks that tasks go only to subscribers of
// their topic, never beyond a node's slots, and that a queued task takes
// the first slot that frees.
func TestTopicsAndSlotsHonoured(t *testing.T) {
	subs := []struct {
		topic string
		slots int
	}{{"a", 1}, {"a", 2}, {"b", 2}}
	m, fakes := startFakes(t, len(subs), func(i int, c *node.Config) {
		c.Topics, c.Slots = topics(subs[i].topic), subs[i].slots
	})
	ctx := testCtx(t)
	c := m.Client(0)

	var jobs []api.SpawnResponse
	for range 4 {
		jobs = append(jobs, spawn(t, c, "a", "build"))
	}
	perNode := map[string]int{}
	for _, r := range jobs[:3] {
		perNode[waitTask(t, c, r.Job, r.Task, "running").Node]++
	}
	for _, want := range []struct {
		node string
		n    int
	}{{"node0", 1}, {"node1", 2}, {"node2", 0}} {
		if perNode[want.node] != want.n {
			t.Errorf("tasks on %s: got %d, want %d (all: %v)", want.node, perNode[want.node], want.n, perNode)
		}
	}
	for i, want := range []int{1, 2, 0} {
		if got := len(fakes[i].Procs()); got != want {
			t.Errorf("processes started on node%d: got %d, want %d", i, got, want)
		}
	}

	// The fourth waits, and says why, in the job and in the status.
	const busy = "all 3 slots on the 2 node(s) subscribed to a are busy"
	queued := jobs[3]
	d := job(t, c, queued.Job)
	if tv := d.Tasks[0]; tv.State != "queued" || tv.Node != "" || tv.Waiting != busy {
		t.Errorf("fourth task: got state %s node %q waiting %q, want queued, no node, %q", tv.State, tv.Node, tv.Waiting, busy)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if len(st.Waiting) != 1 || st.Waiting[0].Task != queued.Task || st.Waiting[0].Reason != busy {
		t.Errorf("status waiting: got %+v, want only task %s with reason %q", st.Waiting, queued.Task, busy)
	}
	used := map[string]int{}
	for _, mb := range st.Members {
		used[mb.Name] = mb.Used
	}
	if used["node0"] != 1 || used["node1"] != 2 || used["node2"] != 0 {
		t.Errorf("slots used: got %v, want node0:1 node1:2 node2:0", used)
	}

	// Freeing node0's only slot hands it the queued task.
	fakes[0].Procs()[0].Finish(0)
	if tv := waitTask(t, c, queued.Job, queued.Task, "running"); tv.Node != "node0" {
		t.Errorf("queued task ran on %s, want node0 (the freed slot)", tv.Node)
	}
	for _, f := range fakes[:2] {
		for _, p := range f.Procs() {
			p.Finish(0)
		}
	}
	for _, r := range jobs {
		d := m.WaitJob(0, r.Job, waitLong)
		checkJob(t, d, "closed", "passed", "")
	}

	// Topic b has one subscriber: node2.
	rb := spawn(t, c, "b", "test")
	p, at := procOf(t, fakes, rb.Task)
	if at != 2 {
		t.Errorf("topic b task started on node%d, want node2", at)
	}
	p.Finish(0)
	d = m.WaitJob(0, rb.Job, waitLong)
	checkJob(t, d, "closed", "passed", "")
	if d.Tasks[0].Node != "node2" {
		t.Errorf("topic b task: got node %s, want node2", d.Tasks[0].Node)
	}
	if got := len(fakes[2].Procs()); got != 1 {
		t.Errorf("processes started on node2: got %d, want 1 (the topic b task only)", got)
	}
}

// TestQueuedUntilSubscriberJoins checks that a task on a topic nobody
// serves waits with a clear reason and runs once a subscriber joins.
func TestQueuedUntilSubscriberJoins(t *testing.T) {
	const topic = "ourci/test/esp-12e"
	m := startMesh(t, 2, nil)
	ctx := testCtx(t)
	c := m.Client(0)

	r := spawn(t, c, topic, "true")
	want := "no node subscribes to " + topic
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if len(st.Waiting) != 1 || st.Waiting[0].Task != r.Task || st.Waiting[0].Reason != want {
		t.Errorf("status waiting: got %+v, want task %s with reason %q", st.Waiting, r.Task, want)
	}
	if tv := job(t, c, r.Job).Tasks[0]; tv.State != "queued" || tv.Waiting != want {
		t.Errorf("task: got state %s waiting %q, want queued %q", tv.State, tv.Waiting, want)
	}

	m.Add(func(i int, c *node.Config) { c.Topics = topics(topic) })
	d := m.WaitJob(0, r.Job, waitLong)
	checkJob(t, d, "closed", "passed", "")
	if tv := d.Tasks[0]; tv.Node != "node2" || tv.ExitCode == nil || *tv.ExitCode != 0 {
		t.Errorf("task: got node %s exit %v, want node2 exit 0", tv.Node, tv.ExitCode)
	}
}
