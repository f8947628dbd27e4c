package leader

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// Loss hands back the unfinished attempts of nodes that gossip no longer
// lists (dead, or left): each goes back to the queue as its next attempt,
// up to MaxAttempts, then ends as lost. The old attempt is fenced: should
// its node come back, its reports are refused and its runner stops the
// process once its replica shows the attempt superseded. A node that is
// alive but unhealthy (it gossips why) has its unstarted attempts handed
// elsewhere as infrastructure retries, bounded by MaxInfra.
//
// A node that just started has not heard from everyone yet: absence
// counts only after Grace (real time: the node's gossip must have run
// that long).
type Loss struct {
	Ledger      Ledger
	Writer      Writer
	Members     Members
	Clock       clock.Clock
	Log         *slog.Logger
	MaxAttempts int
	MaxInfra    int
	Grace       time.Duration // left of the node's startup grace; 0: none
}

func (Loss) Name() string { return "loss" }

func (l Loss) Run(ctx context.Context) {
	if l.Grace > 0 && !sleep(ctx, l.Grace) {
		return
	}
	for {
		gch := l.Members.Watch()
		_, fch := l.Ledger.Watch()
		if cmds := l.due(); len(cmds) > 0 {
			l.Log.Warn("requeueing the attempts of nodes that left the mesh", "attempts", len(cmds))
			c := cmds[0]
			if len(cmds) > 1 {
				c = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
			}
			if _, err := l.Writer.Submit(ctx, c); err != nil && ctx.Err() == nil {
				l.Log.Warn("leader: requeue", "err", err)
				if !sleep(ctx, time.Second) {
					return
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

// due returns the requeues the mesh needs now.
func (l Loss) due() []raftfsm.Command {
	live := memberMap(l.Members.Members())
	now := l.Clock.Now().UTC()
	var cmds []raftfsm.Command
	l.Ledger.Read(func(s *raftfsm.State, _ uint64) {
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
							Task: t.ID, Attempt: t.Attempt, MaxAttempts: l.MaxAttempts, At: now,
							Infra: true, MaxInfra: l.MaxInfra, Reason: "node " + node + " is unhealthy: " + m.Meta.Unhealthy,
						}})
					}
				}
				continue
			}
			for _, t := range s.Active(node) {
				cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{
					Task: t.ID, Attempt: t.Attempt, MaxAttempts: l.MaxAttempts, At: now,
					Reason: "node " + node + " left the mesh during attempt " + strconv.Itoa(t.Attempt),
				}})
			}
		}
	})
	return cmds
}
