package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// Drain takes this node out of the mesh gracefully: it gossips that it
// takes no new tasks, lets its running tasks finish, hands leadership over
// if it leads, has the leader remove it from Raft (a live non-voter is then
// promoted in its place), leaves gossip and shuts down. Done() is closed
// when it has.
func (n *Node) Drain(ctx context.Context) error {
	if err := n.setDraining(); err != nil {
		return err
	}
	n.log.Info("draining: no new tasks; waiting for running ones")
	for {
		_, ch := n.fsm.Watch()
		load := 0
		n.fsm.Read(func(s *raftfsm.State, _ uint64) { load = s.Load(n.cfg.Name) })
		if load == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: drain: %d tasks still running: %w", load, ctx.Err())
		case <-ch:
		}
	}
	if n.IsLeader() {
		n.log.Info("draining: handing leadership over")
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("node: drain: leadership transfer: %w", err)
		}
	}
	base, err := n.leaderURL(ctx, 10*time.Second)
	if err != nil {
		return fmt.Errorf("node: drain: %w", err)
	}
	if err := n.askLeave(ctx, base); err != nil {
		return fmt.Errorf("node: drain: leaving raft: %w", err)
	}
	n.log.Info("drained: left the Raft group; leaving the mesh")
	go func() {
		n.Close()
		n.doneOnce.Do(func() { close(n.done) })
	}()
	return nil
}

// Done is closed once the node shut itself down (after a drain).
func (n *Node) Done() <-chan struct{} { return n.done }

func (n *Node) setDraining() error {
	n.offerMu.Lock()
	defer n.offerMu.Unlock()
	m := n.meta
	m.Draining = true
	if err := n.gossip.SetMeta(m); err != nil {
		return err
	}
	n.meta = m
	return nil
}

func (n *Node) askLeave(ctx context.Context, base string) error {
	return n.peers.Leave(ctx, base, n.cfg.Name)
}

// handleDrain drains this node; the answer comes once it has left Raft.

// serversNamed returns the Raft IDs of the configuration's servers that
// stand for the node name.
func (n *Node) serversNamed(name string) []raft.ServerID {
	var ids []raft.ServerID
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if leader.NameOfID(s.ID) == name {
				ids = append(ids, s.ID)
			}
		}
	}
	return ids
}
