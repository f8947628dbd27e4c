package leader

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
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
//
// Gossip drops a node that misses its probes, and a node whose CPU a
// build saturates can miss them while it runs its attempts well. So
// before its attempts are requeued the leader asks the node itself
// (Answers, over its peer port): one that answers as that node is not
// lost, and is asked again every second while gossip lists it as gone.
// A partitioned, paused or dead node does not answer, and loses its
// attempts as before.
type Loss struct {
	Ledger      Ledger
	Writer      Writer
	Members     Members
	Clock       clock.Clock
	Log         *slog.Logger
	MaxAttempts int
	MaxInfra    int
	Grace       time.Duration // left of the node's startup grace; 0: none
	// Answers reports whether node answers, as itself, at its peer port
	// (within a bound of its own). Nil: absence from gossip is loss.
	Answers func(ctx context.Context, node string) bool
}

func (Loss) Name() string { return "loss" }

func (l Loss) Run(ctx context.Context) {
	if l.Grace > 0 && !sleep(ctx, l.Grace) {
		return
	}
	spared := map[string]bool{} // nodes that answered though gossip dropped them
	for {
		gch := l.Members.Watch()
		_, fch := l.Ledger.Watch()
		cmds, answered := l.due(ctx)
		for _, node := range answered {
			if !spared[node] {
				l.Log.Warn("gossip lists a node as gone, but it answers at its peer port: its attempts stay with it", "member", node)
			}
		}
		spared = map[string]bool{}
		for _, node := range answered {
			spared[node] = true
		}
		if len(cmds) > 0 {
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
		var again <-chan time.Time
		if len(answered) > 0 {
			again = time.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-gch:
		case <-fch:
		case <-again:
		}
	}
}

// due returns the requeues the mesh needs now, and the nodes gossip
// dropped that answered (their attempts are not among them).
func (l Loss) due(ctx context.Context) (cmds []raftfsm.Command, answered []string) {
	live := memberMap(l.Members.Members())
	absent := map[string][]raftfsm.Command{}
	var absentOrder []string
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
							Task: t.ID, Attempt: t.Attempt, MaxAttempts: l.MaxAttempts,
							Infra: true, MaxInfra: l.MaxInfra, Reason: "node " + node + " is unhealthy: " + m.Meta.Unhealthy,
						}})
					}
				}
				continue
			}
			absentOrder = append(absentOrder, node)
			for _, t := range s.Active(node) {
				absent[node] = append(absent[node], raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{
					Task: t.ID, Attempt: t.Attempt, MaxAttempts: l.MaxAttempts,
					Reason: "node " + node + " left the mesh during attempt " + strconv.Itoa(t.Attempt),
				}})
			}
		}
	})
	// Asked outside the ledger's lock, all at once: each answer may take
	// its bound.
	answers := make([]bool, len(absentOrder))
	if l.Answers != nil {
		var wg sync.WaitGroup
		for i, node := range absentOrder {
			wg.Go(func() { answers[i] = l.Answers(ctx, node) })
		}
		wg.Wait()
	}
	for i, node := range absentOrder {
		if answers[i] {
			answered = append(answered, node)
			continue
		}
		cmds = append(cmds, absent[node]...)
	}
	return cmds, answered
}
