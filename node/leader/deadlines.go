package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// Backstop is how long past a task's own timeout its node has to report
// the end before the leader times the task out itself.
const Backstop = time.Minute

// Deadlines closes jobs past their deadline and, as a backstop for a node
// that stopped reporting, times out tasks running far past their timeout
// on nodes that are alive (a dead node's attempts are Loss's). It wakes at
// every ledger change and at the next deadline, on the injected clock.
type Deadlines struct {
	Ledger  Ledger
	Writer  Writer
	Members Members
	Clock   clock.Clock
	Log     *slog.Logger
}

func (Deadlines) Name() string { return "deadlines" }

func (d Deadlines) Run(ctx context.Context) {
	for {
		_, ch := d.Ledger.Watch()
		now := d.Clock.Now()
		cmds, next := d.due(now)
		failed := false
		for _, c := range cmds {
			if _, err := d.Writer.Submit(ctx, c); err != nil && ctx.Err() == nil {
				d.Log.Warn("leader: deadline", "err", err)
				failed = true
			}
		}
		if len(cmds) > 0 && !failed {
			continue
		}
		if failed {
			next = now.Add(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-d.Clock.After(next.Sub(now)):
		}
	}
}

// due returns the commands due at now and when to look next.
func (d Deadlines) due(now time.Time) (cmds []raftfsm.Command, next time.Time) {
	next = now.Add(time.Hour)
	members := memberMap(d.Members.Members())
	d.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		for _, j := range s.OpenJobs() {
			if !j.Deadline.IsZero() && !now.Before(j.Deadline) {
				cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: j.ID, Reason: raftfsm.ReasonTimedOut}})
			} else if !j.Deadline.IsZero() && j.Deadline.Before(next) {
				next = j.Deadline
			}
		}
		for _, node := range s.ActiveNodes() {
			if _, alive := members[node]; !alive {
				continue // node loss is handled by requeueing, not by timing out
			}
			for _, t := range s.Active(node) {
				if t.State != raftfsm.TaskRunning || t.Timeout == 0 {
					continue
				}
				limit := t.StartedAt.Add(t.Timeout + Backstop)
				if !now.Before(limit) {
					cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{
						Task: t.ID, Attempt: t.Attempt, Node: t.Node, State: raftfsm.TaskTimedOut,
						Error: "timed out: its node did not report the end"}})
				} else if limit.Before(next) {
					next = limit
				}
			}
		}
	})
	return cmds, next
}
