package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// gcGrace protects a local copy the ledger does not know yet (an upload or
// fetch whose record is still in flight) from collection.
const gcGrace = 10 * time.Minute

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
// of copies gone from disk. It decides only on a replica that is current:
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

// verifyUnflushedBlobs, after an unclean stop, re-hashes the blob copies
// the previous run wrote but may not have flushed: a torn one is deleted and
// its holder record dropped (OnCorrupt), one that is gone is found by the
// next collect.
func (n *Node) verifyUnflushedBlobs() {
	checked, corrupt, err := n.blobs.VerifyUnflushed()
	switch {
	case err != nil:
		n.log.Warn("blobs: verifying copies written before an unclean stop", "err", err)
	case checked > 0:
		n.log.Info("blobs: verified the copies written before an unclean stop", "checked", checked, "corrupt", corrupt)
	}
}

// collect runs one GC pass and returns how many copies it deleted.
func (n *Node) collect() int {
	infos, err := n.blobs.List()
	if err != nil {
		n.log.Warn("blob gc: list", "err", err)
		return 0
	}
	now := n.cfg.Clock.Now()
	var drop []blobs.Hash
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, in := range infos {
			if _, known := s.Blobs[string(in.Hash)]; !known && now.Sub(in.ModTime) >= gcGrace {
				drop = append(drop, in.Hash)
			}
		}
	})
	n.dropLostHolds(infos)
	for _, h := range drop {
		if err := n.blobs.Delete(h); err != nil {
			n.log.Warn("blob gc: delete", "hash", h, "err", err)
			continue
		}
		n.log.Info("blob gc: deleted an unreferenced copy", "hash", h)
	}
	return len(drop) + n.collectLogs(now)
}

// dropLostHolds withdraws this node's holder records for blobs it no longer
// has (a disk replaced or cleaned by hand, a name a crash took back), so
// replication makes a new copy and fetchers stop asking here. infos is the
// store's listing; a blob missing from it is checked again, since a copy is
// always in place before its record is proposed.
func (n *Node) dropLostHolds(infos []blobs.Info) {
	local := make(map[blobs.Hash]bool, len(infos))
	for _, in := range infos {
		local[in.Hash] = true
	}
	var lost []blobs.Hash
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for h, b := range s.Blobs {
			if _, held := slices.BinarySearch(b.Holders, n.cfg.Name); held && !local[blobs.Hash(h)] {
				lost = append(lost, blobs.Hash(h))
			}
		}
	})
	for _, h := range lost {
		if n.blobs.Has(h) {
			continue // placed after the listing
		}
		n.log.Warn("blob copy recorded here is gone: withdrawing the record", "hash", h)
		n.reportAsync(api.Report{Kind: api.ReportBlobDropped, Node: n.cfg.Name, Hash: string(h)})
	}
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
