package node

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/raftfsm"
)

// maxVoters is how many nodes vote in Raft; the rest replicate as non-voters.
const maxVoters = 5

// leadershipLoop runs the leader's duties while this node leads: the
// dispatcher, Raft membership, deadlines and timeouts.
func (n *Node) leadershipLoop() {
	var stop context.CancelFunc
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-n.raft.LeaderCh():
			if stop != nil {
				stop()
				stop = nil
			}
			n.metrics.LeadershipChanged(isLeader) // metrics
			if isLeader {
				n.log.Info("leading the mesh")
				ctx, cancel := context.WithCancel(n.ctx)
				stop = cancel
				n.lead(ctx)
			} else {
				n.log.Info("no longer leading")
			}
		}
	}
}

// lead starts the leader's loops; they end when ctx is cancelled.
func (n *Node) lead(ctx context.Context) {
	d := newDispatcher(n)
	n.mu.Lock()
	n.dispatcher = d
	n.mu.Unlock()
	n.goFunc(func() {
		d.run(ctx)
		n.mu.Lock()
		if n.dispatcher == d {
			n.dispatcher = nil
		}
		n.mu.Unlock()
	})
	n.goFunc(func() { n.membershipLoop(ctx) })
	n.goFunc(func() { n.kickLoop(ctx, d) })
	n.goFunc(func() { n.deadlineLoop(ctx, d) })
	n.goFunc(func() { n.retentionLoop(ctx, d) })
	n.goFunc(func() { n.lossLoop(ctx, d) })
	n.goFunc(func() { n.githubLoop(ctx, d) })
	n.goFunc(func() { n.replicationLoop(ctx) })
}

// currentDispatcher returns the dispatcher if this node leads.
func (n *Node) currentDispatcher() *dispatcher {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dispatcher
}

// membershipLoop adds every live gossip member to Raft as a non-voter and
// promotes non-voters to voters, up to maxVoters, once their replica has
// caught up: a voter with an empty log would count towards the quorum
// before it could vote for anything, and stall commits while it catches up.
func (n *Node) membershipLoop(ctx context.Context) {
	for {
		ch := n.gossip.Watch()
		wait := 10 * time.Second
		if n.reconcileRaft(ctx) {
			wait = 200 * time.Millisecond // a promotion is pending
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(wait):
		}
	}
}

// promoteLag is how far behind the leader's applied index a non-voter may
// be and still be promoted.
const promoteLag = 64

// reconcileRaft brings the Raft configuration in line with gossip and
// reports whether a member still waits for promotion.
func (n *Node) reconcileRaft(ctx context.Context) (pending bool) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.log.Warn("node: raft configuration", "err", err)
		return false
	}
	known := map[raft.ServerID]raft.Server{}
	voters := 0
	for _, s := range f.Configuration().Servers {
		known[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, m := range n.gossip.Members() {
		if m.Meta.Draining {
			continue // leaving: not added, not promoted
		}
		id, addr := raft.ServerID(m.Name), raft.ServerAddress(m.Meta.Raft)
		s, ok := known[id]
		var err error
		switch {
		case ok && s.Address != addr && s.Suffrage == raft.Voter:
			n.log.Info("raft voter moved", "member", m.Name, "addr", addr)
			err = n.raft.AddVoter(id, addr, 0, 5*time.Second).Error()
		case !ok || s.Address != addr:
			n.log.Info("adding raft non-voter", "member", m.Name, "addr", addr)
			err = n.raft.AddNonvoter(id, addr, 0, 5*time.Second).Error()
			pending = pending || voters < maxVoters
		case s.Suffrage != raft.Voter && voters < maxVoters:
			if !n.caughtUp(ctx, m.Meta.Raft) {
				pending = true
				continue
			}
			n.log.Info("promoting raft non-voter to voter", "member", m.Name)
			voters++
			err = n.raft.AddVoter(id, addr, 0, 5*time.Second).Error()
		}
		if err != nil {
			n.log.Warn("node: raft membership", "member", m.Name, "err", err)
		}
	}
	return pending
}

// caughtUp reports whether the member whose peer port is raftAddr has
// applied the ledger to within promoteLag of this (leader) node.
func (n *Node) caughtUp(ctx context.Context, raftAddr string) bool {
	idx, ok := n.peerIndex(peerURL(raftAddr))
	return ok && idx+promoteLag >= n.fsm.Index()
}

// kickLoop asks the dispatcher to assign queued tasks whenever the ledger
// or the membership changed and something is queued.
func (n *Node) kickLoop(ctx context.Context, d *dispatcher) {
	for {
		_, fch := n.fsm.Watch()
		gch := n.gossip.Watch()
		queued := false
		n.fsm.Read(func(s *raftfsm.State, _ uint64) { queued = len(s.Queued()) > 0 })
		if queued {
			d.kick()
		}
		select {
		case <-ctx.Done():
			return
		case <-fch:
		case <-gch:
		}
	}
}

// deadlineLoop closes jobs past their deadline and, as a backstop for a
// node that stopped reporting, times out tasks running far past their
// timeout. Times come from the injectable clock.
func (n *Node) deadlineLoop(ctx context.Context, d *dispatcher) {
	const backstop = time.Minute // beyond a task's own timeout, for its node to report
	for {
		_, ch := n.fsm.Watch()
		now := n.cfg.Clock.Now()
		var cmds []raftfsm.Command
		next := now.Add(time.Hour)
		members := memberMap(n.gossip.Members())
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			for _, j := range s.OpenJobs() {
				if !j.Deadline.IsZero() && !now.Before(j.Deadline) {
					cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: j.ID, Reason: raftfsm.ReasonTimedOut, At: now.UTC()}})
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
					limit := t.StartedAt.Add(t.Timeout + backstop)
					if !now.Before(limit) {
						cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{
							Task: t.ID, Attempt: t.Attempt, Node: t.Node, State: raftfsm.TaskTimedOut,
							Error: "timed out: its node did not report the end", At: now.UTC()}})
					} else if limit.Before(next) {
						next = limit
					}
				}
			}
		})
		failed := false
		for _, c := range cmds {
			if _, err := d.submit(ctx, c); err != nil && ctx.Err() == nil {
				n.log.Warn("node: deadline", "err", err)
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
		case <-n.cfg.Clock.After(next.Sub(now)):
		}
	}
}

func memberMap(ms []gossip.Member) map[string]gossip.Member {
	out := make(map[string]gossip.Member, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}
