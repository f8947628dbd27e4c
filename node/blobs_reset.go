package node

import (
	"context"
	"errors"
	"slices"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// A node whose blob store is empty when it starts (its data dir was wiped,
// or is new) holds no copy of anything, whatever the ledger says. Left to
// the collection pass, its stale holder records would stand until its
// replica caught up (seconds on a big ledger), and meanwhile replication
// counts the copies they name: a second failure in that window loses
// blobs that had one good copy left. So the node's first blob report is a
// reset: the leader, whose state is current, withdraws every record that
// names it. Until the reset is delivered, the node records no copy of its
// own (holdGate), so the reset can only withdraw records from before this
// start.

// resetHoldings delivers the reset (retrying until a leader takes it) and
// then opens holdGate. A leader that does not know the report kind (an
// older binary) refuses it: then the collection pass withdraws the stale
// records once this replica is current, as before.
func (n *Node) resetHoldings() {
	defer n.holdOpen()
	err := n.runner.Report(api.Report{Kind: api.ReportBlobsReset, Node: n.cfg.Name})
	switch {
	case err == nil && n.ctx.Err() == nil:
		n.log.Info("blob store empty at start: the ledger's records of copies here are withdrawn")
	case err != nil:
		n.log.Warn("blob store empty at start, and the leader did not withdraw the records of copies here: the collection pass will, once this replica is current", "err", err)
	}
}

// holdOpen opens holdGate (once).
func (n *Node) holdOpen() { n.holdOnce.Do(func() { close(n.holdGate) }) }

// waitHoldGate waits until this node may record copies it holds, when c
// records one (a blob copy or a sealed log held here); every write passes
// it (submitAt).
func (n *Node) waitHoldGate(ctx context.Context, c raftfsm.Command) error {
	if !n.recordsOwnCopy(c) {
		return nil
	}
	select {
	case <-n.holdGate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recordsOwnCopy reports whether c (or a part of it) records a copy this
// node holds.
func (n *Node) recordsOwnCopy(c raftfsm.Command) bool {
	switch {
	case c.Type == raftfsm.CmdBatch:
		return slices.ContainsFunc(c.Batch, n.recordsOwnCopy)
	case c.Type == raftfsm.CmdBlobAdded && c.BlobAdded != nil:
		return c.BlobAdded.Node == n.cfg.Name
	case c.Type == raftfsm.CmdLogSealed && c.LogSealed != nil:
		return c.LogSealed.Log.Node == n.cfg.Name
	}
	return false
}

// maxResetDrops bounds the records one reset withdraws (about 100 bytes of
// Raft entry each); what is left the collection pass withdraws.
const maxResetDrops = 20000

// resetCommand withdraws every holder record naming node, as one batch
// of blob_dropped commands (known to every ledger schema), read from the
// leader's state now. No record names it: an empty batch.
func resetCommand(s *raftfsm.State, node string) raftfsm.Command {
	c := raftfsm.Command{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{}}
	hashes := make([]string, 0, len(s.Blobs))
	for h, b := range s.Blobs {
		if _, holds := slices.BinarySearch(b.Holders, node); holds {
			hashes = append(hashes, h)
		}
	}
	slices.Sort(hashes)
	for _, h := range hashes[:min(len(hashes), maxResetDrops)] {
		c.Batch = append(c.Batch, raftfsm.Command{Type: raftfsm.CmdBlobDropped, BlobDropped: &raftfsm.BlobDropped{Hash: h, Node: node}})
	}
	return c
}

var errResetNeedsNode = errors.New("report: blobs_reset needs the node")
