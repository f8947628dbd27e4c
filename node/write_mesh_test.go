package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// TestFollowerWritesThroughTheLeader: a follower's write is a command it
// hands to its Writer, which reaches the leader's dispatcher over the peer
// port: it comes back applied on the follower's own replica (read your
// writes), stamped with the leader's time and limits, and refusals keep
// their sentinels (errors.Is), a batch's parts each their own. What a node
// has no business writing (a spawn, a close) is refused at the leader and
// changes nothing.
func TestFollowerWritesThroughTheLeader(t *testing.T) {
	m := startMesh(t, 3, nil)
	ctx := testCtx(t)
	f := m.Nodes[m.Follower()]
	w := f.Writer()

	hash := strings.Repeat("ab", 32)
	res, err := w.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: hash, Size: 5, Node: f.Name()}})
	if err != nil || res.Err != nil {
		t.Fatalf("blob_added through a follower: got %v / %v, want it applied", err, res.Err)
	}
	var holders []string
	var at time.Time
	f.FSM().Read(func(s *raftfsm.State, _ uint64) {
		if b := s.Blobs[hash]; b != nil {
			holders, at = b.Holders, b.CreatedAt
		}
	})
	if len(holders) != 1 || holders[0] != f.Name() {
		t.Errorf("the follower's replica when Submit returned: got holders %v, want [%s]", holders, f.Name())
	}
	if at.IsZero() || time.Since(at) > time.Minute {
		t.Errorf("the record's time: got %v, want the leader's stamp of a moment ago", at)
	}

	_, err = w.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: "nosuchtask", Attempt: 1, Node: f.Name()}})
	if !errors.Is(err, raftfsm.ErrNotFound) || !strings.Contains(err.Error(), "nosuchtask") {
		t.Errorf("a start of no task: got %v, want a raftfsm.ErrNotFound refusal naming it", err)
	}

	res, err = w.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{
		{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: "nosuchtask", Attempt: 1, Node: f.Name()}},
		{Type: raftfsm.CmdBlobDropped, BlobDropped: &raftfsm.BlobDropped{Hash: hash, Node: f.Name()}},
	}})
	if err != nil || len(res.Batch) != 2 || !errors.Is(res.Batch[0].Err, raftfsm.ErrNotFound) || res.Batch[1].Err != nil {
		t.Errorf("a batch: got %v, %+v, want its first part refused as not found and its second applied", err, res.Batch)
	}

	jobs := func() int {
		k := 0
		f.FSM().Read(func(s *raftfsm.State, _ uint64) { k = len(s.Jobs) })
		return k
	}
	before := jobs()
	for _, c := range []raftfsm.Command{
		{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Topic: "t", Args: []string{}, NewJob: &raftfsm.NewJob{}}},
		{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: "j", Reason: raftfsm.ReasonCancelled}}}},
	} {
		if _, err := w.Submit(ctx, c); !errors.Is(err, raftfsm.ErrInvalid) || !strings.Contains(err.Error(), "does not submit") {
			t.Errorf("%s from a follower: got %v, want an ErrInvalid refusal saying a node does not submit it", c.Type, err)
		}
	}
	if got := jobs(); got != before {
		t.Errorf("jobs after the refused spawn: got %d, want %d", got, before)
	}
}
