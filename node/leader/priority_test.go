package leader

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/raftfsm"
)

// TestQueueOrder: a free slot goes to the queued task of the highest
// priority; within one priority, to the older job's task (a running job's
// late stage before a newer job's first), then the older task; quarantined
// rigs get none.
func TestQueueOrder(t *testing.T) {
	fsm := raftfsm.NewFSM()
	idx := uint64(0)
	apply := func(c raftfsm.Command) {
		t.Helper()
		raftfsm.Stamp(&c, time.Now())
		b, err := raftfsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if res := fsm.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: b}).(raftfsm.Result); res.Err != nil {
			t.Fatalf("%s: %v", c.Type, res.Err)
		}
	}
	spawn := func(job, task string, prio int, parent string) {
		sp := &raftfsm.Spawn{Job: job, Task: task, Topic: "hw", Args: []string{}, Priority: prio, Parent: parent}
		if parent == "" {
			sp.NewJob = &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)}
		}
		apply(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp})
	}
	spawn("old", "old-build", 0, "")
	spawn("new", "new-build", 0, "")
	spawn("old", "old-test", 0, "old-build") // the old job's late stage, spawned after the new job opened
	spawn("new", "new-urgent", 5, "new-build")
	spawn("new", "new-low", -5, "new-build")

	mesh := &testMesh{}
	d := NewDispatcher(DispatcherConfig{Members: mesh.get, Ledger: fsm})
	order := func() []string {
		var got []string
		for _, it := range d.newPicker(nil).assignQueued(time.Now()).Items {
			got = append(got, it.Task)
		}
		return got
	}
	mesh.set(member("rig", 5, "hw"))
	if got, want := order(), []string{"new-urgent", "old-build", "old-test", "new-build", "new-low"}; !slices.Equal(got, want) {
		t.Errorf("five slots: got %v, want %v", got, want)
	}
	mesh.set(member("rig", 1, "hw"))
	if got := order(); len(got) != 1 || got[0] != "new-urgent" {
		t.Errorf("one slot: got %v, want [new-urgent]", got)
	}
	apply(raftfsm.Command{Type: raftfsm.CmdQuarantine, Quarantine: &raftfsm.Quarantine{Node: "rig", Topic: "hw", Reason: "board dead"}})
	if a := d.newPicker(nil).assignQueued(time.Now()); a != nil {
		t.Errorf("a quarantined rig: got %v assigned, want none", a.Items)
	}
	mesh.set(member("rig", 1, "hw"), member("spare", 1, "hw"))
	if got := d.newPicker(nil).assignQueued(time.Now()); got == nil || len(got.Items) != 1 || got.Items[0].Node != "spare" {
		t.Errorf("a quarantined rig and a spare: got %+v, want the urgent task on the spare", got)
	}
}
