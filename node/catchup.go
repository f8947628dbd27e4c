package node

import (
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/peer"
)

// A node acts on its replica (starts attempts, deletes files, withdraws
// records) only once the replica is known to hold everything the mesh had
// committed when the node started. After a restart a replica holds its last
// snapshot at first and re-applies its log only once it learns the commit
// index; until then it shows finished tasks as assigned and blobs of closed
// jobs as unknown. A leader knows it holds everything committed once its
// barrier has passed (leadership: leader.go); a follower once it has applied
// what an established leader had applied when asked.

// healthView is the body of GET /v1/health.
type healthView = peer.Health

// catchUp waits until the replica has caught up (see above), then opens the
// ready gate: the runner starts, collection may run, and the node gossips
// that it takes work. Without an established leader nothing can be known,
// so it waits for one.
func (n *Node) catchUp() {
	start := time.Now()
	for n.ctx.Err() == nil {
		if idx, ok := n.caughtUpIndex(); ok {
			n.markReady(idx, time.Since(start))
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// caughtUpIndex reports whether the replica holds everything an established
// leader holds now, and that leader's index.
func (n *Node) caughtUpIndex() (uint64, bool) {
	if n.IsLeader() {
		if n.currentDispatcher() != nil {
			return n.fsm.Index(), true // the barrier passed: all committed is applied
		}
		return 0, false
	}
	base, err := n.leaderURL(n.ctx, 2*time.Second)
	if err != nil || base == n.peerURL {
		return 0, false
	}
	h, ok := n.peerHealth(base)
	if !ok || !h.Established {
		return 0, false // a leader still replaying its own log knows no more than we do
	}
	n.waitIndex(n.ctx, h.Index, 30*time.Second)
	return h.Index, n.fsm.Index() >= h.Index
}

// markReady opens the ready gate once.
func (n *Node) markReady(idx uint64, after time.Duration) {
	n.readyOnce.Do(func() {
		if n.id.Fresh {
			n.runner.Disown()
		}
		if after > time.Second {
			n.log.Info("caught up with the mesh; running tasks now", "index", idx, "after", after.Round(time.Millisecond))
		}
		close(n.ready)
		n.updateMeta(func(m *gossip.Meta) { m.CatchingUp = false })
	})
}

// isReady reports whether the ready gate is open.
func (n *Node) isReady() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// replicaCurrent reports whether this node's replica is caught up right now:
// the ready gate passed, and it leads with its barrier passed, or it heard
// from the leader within the last few heartbeats and has applied what that
// leader told it was committed. Collection asks before every pass, so a node
// cut off from the mesh deletes and withdraws nothing.
func (n *Node) replicaCurrent() bool {
	if !n.isReady() {
		return false
	}
	if n.IsLeader() {
		return n.currentDispatcher() != nil
	}
	last := n.raft.LastContact()
	if last.IsZero() || time.Since(last) > 3*n.cfg.RaftTiming.Heartbeat+time.Second {
		return false
	}
	// Under load a follower applies a batch or two behind the commit index;
	// what matters is that it hears from the leader and keeps up.
	return n.raft.AppliedIndex()+4*promoteLag >= n.raft.CommitIndex()
}

// peerHealth asks a node for its health (over the peer port).
func (n *Node) peerHealth(base string) (healthView, bool) { return n.peers.Health(n.ctx, base) }

// peerIndex asks a node for its applied ledger index.
func (n *Node) peerIndex(base string) (uint64, bool) {
	h, ok := n.peerHealth(base)
	return h.Index, ok
}
