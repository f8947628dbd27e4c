package node

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/ourci/ourci/node/artifacts"
	"github.com/ourci/ourci/raftfsm"
)

// gcGrace protects a local copy (or task log) the ledger does not know yet
// from collection (artifacts.Grace).
const gcGrace = artifacts.Grace

// settleDelay lets a burst of ledger changes settle before a leader loop
// that walks the whole ledger (blobs, closed jobs) looks again: under load
// the ledger changes every few milliseconds.
const settleDelay = 200 * time.Millisecond

// askPull asks member to fetch hash from its holders (leader.Replication's
// Pull).
func (n *Node) askPull(ctx context.Context, member, hash string) error {
	base, ok := n.memberURL(member)
	if !ok {
		return ErrNoHolder
	}
	// The puller must know the blob first: it waits for its replica to reach
	// the leader's index before it looks up the holders.
	return n.peers.Pull(ctx, base, hash, n.fsm.Index())
}

// gcLoop (every node) deletes local blob copies and task logs the ledger no
// longer knows, once they are older than gcGrace, and withdraws the records
// of copies gone from disk (node/artifacts' Collector). It decides only on a replica that is current:
// none before the node caught up with the mesh after it started (a replica
// still re-applying its log knows almost nothing), and no pass while it is
// cut off from the leader.
func (n *Node) gcLoop() {
	select {
	case <-n.ctx.Done():
		return
	case <-n.ready:
	}
	for {
		_, ch := n.fsm.Watch()
		if n.replicaCurrent() {
			n.collect()
		} else {
			ch = nil // look again after the pause below
		}
		if ch != nil {
			select {
			case <-n.ctx.Done():
				return
			case <-ch:
			case <-n.cfg.Clock.After(gcGrace):
			}
		}
		// Coalesce bursts of ledger changes: collect at most every second.
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// collect runs one collection pass (node/artifacts: blob copies; here:
// task logs) and returns how many it deleted.
func (n *Node) collect() int {
	return n.collector.Collect() + n.collectLogs(n.cfg.Clock.Now())
}

// collectLogs deletes the output of tasks the ledger has forgotten, once
// older than gcGrace, and returns how many tasks' logs it removed.
func (n *Node) collectLogs(now time.Time) int {
	entries, err := os.ReadDir(n.logs.Dir())
	if err != nil {
		return 0
	}
	var stale []string
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, e := range entries {
			if _, known := s.Tasks[e.Name()]; known || !e.IsDir() {
				continue
			}
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) >= gcGrace {
				stale = append(stale, e.Name())
			}
		}
	})
	for _, id := range stale {
		os.RemoveAll(filepath.Join(n.logs.Dir(), id))
	}
	return len(stale)
}
