package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/raftfsm"
)

// The one write path. Every write is a ledger command handed to a
// leader.Writer: on the leader its dispatcher, which stamps the command's
// time, new IDs and the mesh's limits (leader.Limits) and proposes it; on
// any other node the same dispatcher, reached over the peer client (POST
// /v1/internal/submit). Handlers that a follower relays whole (leaderOnly)
// build their command on the leader; the runner's reports and the blob
// and log records build theirs where they arise. Refusals come back as
// the ledger's sentinels (errors.Is) either way.
//
// One write is still a request the leader turns into commands: a blob
// store's reset (api.ReportBlobsReset) withdraws what the leader's
// current state names, so it goes to the leader's report route.

// writer is this node's Writer.
func (n *Node) writer() leader.Writer { return nodeWriter{n} }

type nodeWriter struct{ n *Node }

func (w nodeWriter) Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	return w.n.submit(ctx, c)
}

// submit writes c through the Writer; a single command's refusal is the
// error (a batch's parts keep their own).
func (n *Node) submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	res, _, err := n.submitAt(ctx, c)
	return res, err
}

// submitAt is submit, and returns a ledger index at or after c's entry
// that the local replica has applied (0 when the leader did not say).
func (n *Node) submitAt(ctx context.Context, c raftfsm.Command) (raftfsm.Result, uint64, error) {
	if c.Type == raftfsm.CmdBatch && len(c.Batch) == 0 {
		return raftfsm.Result{Batch: []raftfsm.Result{}}, 0, nil // nothing to propose
	}
	if err := n.waitHoldGate(ctx, c); err != nil { // a copy held here is recorded after the store's reset
		return raftfsm.Result{}, 0, err
	}
	if d := n.currentDispatcher(); d != nil {
		res, err := d.Submit(ctx, c)
		if err != nil {
			return res, 0, err
		}
		return res, n.fsm.Index(), res.Err // applied here: Index is at or past it
	}
	base, err := n.leaderURL(ctx, 2*time.Second)
	if err != nil {
		return raftfsm.Result{}, 0, err
	}
	if base == n.peerURL {
		// This node won an election a moment ago: its dispatcher starts.
		if n.waitDispatcher(ctx, 2*time.Second) {
			return n.submitAt(ctx, c)
		}
		return raftfsm.Result{}, 0, errNotLeader
	}
	res, idx, err := n.peers.Submit(ctx, base, c)
	var ae *peer.AnswerError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return n.submitLegacy(ctx, base, c) // the leader runs a binary without the route
	case errors.As(err, &ae) && ae.Code == api.CodeNoLeader:
		return res, 0, fmt.Errorf("%w: %w", errNotLeader, err)
	case errors.As(err, &ae) && ae.Code == api.CodeNotYet:
		return res, 0, fmt.Errorf("%w: %w", ErrNotYet, err)
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		return res, 0, raftfsm.Refusal("invalid", "the leader refused the command: "+ae.Message)
	case err != nil:
		return res, 0, err
	}
	// Read your writes: return once this replica holds the entry (not
	// while its Raft log cannot be written: it is frozen, and the write is
	// done all the same).
	if !n.replicaFrozen() {
		n.waitIndex(ctx, idx, 5*time.Second)
	}
	return res, idx, res.Err
}

// submitLegacy delivers c to a leader whose binary predates the submit
// route, as the reports that binary takes (during a rolling upgrade; a
// node of this binary never needs it of another).
func (n *Node) submitLegacy(ctx context.Context, base string, c raftfsm.Command) (raftfsm.Result, uint64, error) {
	parts := []raftfsm.Command{c}
	if c.Type == raftfsm.CmdBatch {
		parts = c.Batch
	}
	results := make([]raftfsm.Result, len(parts))
	var idx uint64
	for i, p := range parts {
		rep, ok := legacyReport(p, n.cfg.Name)
		if !ok {
			return raftfsm.Result{}, 0, fmt.Errorf("submit: the leader at %s runs an older binary that takes no %s command from a node; it is written once the leader is upgraded", base, p.Type)
		}
		at, err := n.peers.Report(ctx, base, rep)
		var se *api.StatusError
		switch {
		case errors.As(err, &se) && se.HTTPStatus >= 400 && se.HTTPStatus < 500:
			results[i].Err = raftfsm.Refusal(se.Code, se.Msg) // the old API's codes are the refusal codes
		case err != nil:
			return raftfsm.Result{}, 0, err
		}
		idx = max(idx, at)
	}
	if !n.replicaFrozen() {
		n.waitIndex(ctx, idx, 5*time.Second)
	}
	if c.Type == raftfsm.CmdBatch {
		return raftfsm.Result{Batch: results}, idx, nil
	}
	return results[0], idx, results[0].Err
}

// legacyReport is c, written by node self, as the report an older leader
// turns back into c.
func legacyReport(c raftfsm.Command, self string) (api.Report, bool) {
	switch {
	case c.Type == raftfsm.CmdTaskStarted && c.TaskStarted != nil:
		s := c.TaskStarted
		return api.Report{Kind: api.ReportStarted, Task: s.Task, Attempt: s.Attempt, Node: s.Node}, true
	case c.Type == raftfsm.CmdTaskFinished && c.TaskFinished != nil:
		f := c.TaskFinished
		return api.Report{Kind: api.ReportFinished, Task: f.Task, Attempt: f.Attempt, Node: f.Node, State: f.State, ExitCode: f.ExitCode, Error: f.Error}, true
	case c.Type == raftfsm.CmdRequeue && c.Requeue != nil && !c.Requeue.Infra:
		q := c.Requeue
		return api.Report{Kind: api.ReportAbandoned, Task: q.Task, Attempt: q.Attempt, Node: self, Error: q.Reason}, true
	case c.Type == raftfsm.CmdBlobAdded && c.BlobAdded != nil:
		b := c.BlobAdded
		return api.Report{Kind: api.ReportBlobAdded, Hash: b.Hash, Size: b.Size, Node: b.Node, Job: b.Job, Name: b.Name}, true
	case c.Type == raftfsm.CmdBlobDropped && c.BlobDropped != nil:
		b := c.BlobDropped
		return api.Report{Kind: api.ReportBlobDropped, Hash: b.Hash, Node: b.Node}, true
	case c.Type == raftfsm.CmdLogSealed && c.LogSealed != nil:
		l := c.LogSealed
		return api.Report{Kind: api.ReportLogSealed, Task: l.Task, Attempt: l.Log.Attempt, Node: l.Log.Node, Hash: l.Log.Hash, Size: l.Log.Size, Bytes: l.Log.Bytes, Lines: l.Log.Lines}, true
	}
	return api.Report{}, false
}
