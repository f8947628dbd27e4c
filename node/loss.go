package node

import (
	"context"
	"strconv"
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// lossLoop (leader) hands back the unfinished attempts of nodes that gossip
// no longer lists (dead, or left): each goes back to the queue as its next
// attempt, up to cfg.MaxAttempts, then ends as lost. The old attempt is
// fenced: should its node come back, its reports are refused and its runner
// stops the process once its replica shows the attempt superseded.
//
// A node that just started has not heard from everyone yet: absence counts
// only once its gossip has run for lossGrace.
func (n *Node) lossLoop(ctx context.Context, d *dispatcher) {
	if wait := lossGrace - time.Since(n.started); wait > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	for {
		gch := n.gossip.Watch()
		_, fch := n.fsm.Watch()
		live := memberMap(n.gossip.Members())
		now := n.cfg.Clock.Now().UTC()
		var cmds []raftfsm.Command
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			for _, node := range s.ActiveNodes() {
				if m, ok := live[node]; ok {
					if m.Meta.Unhealthy == "" {
						continue
					}
					// Alive, but it cannot run what it was given: its
					// unstarted attempts go elsewhere (infrastructure
					// retries, not node loss).
					for _, t := range s.Active(node) {
						if t.State == raftfsm.TaskAssigned {
							cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{
								Task: t.ID, Attempt: t.Attempt, MaxAttempts: n.cfg.MaxAttempts, At: now,
								Infra: true, MaxInfra: n.cfg.MaxInfraRetries, Reason: "node " + node + " is unhealthy: " + m.Meta.Unhealthy,
							}})
						}
					}
					continue
				}
				for _, t := range s.Active(node) {
					cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{
						Task: t.ID, Attempt: t.Attempt, MaxAttempts: n.cfg.MaxAttempts, At: now,
						Reason: "node " + node + " left the mesh during attempt " + itoa(t.Attempt),
					}})
				}
			}
		})
		if len(cmds) > 0 {
			n.log.Warn("requeueing the attempts of nodes that left the mesh", "attempts", len(cmds))
			c := cmds[0]
			if len(cmds) > 1 {
				c = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
			}
			if _, err := d.submit(ctx, c); err != nil && ctx.Err() == nil {
				n.log.Warn("requeue", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-gch:
		case <-fch:
		}
	}
}

// lossGrace is how long a node's gossip runs before absence means loss.
const lossGrace = 5 * time.Second

func itoa(i int) string { return strconv.Itoa(i) }
