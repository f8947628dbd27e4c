package node

import (
	"context"
	"sync"
	"time"

	"github.com/ourci/ourci/node/clock"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/leader"
)

// maxVoters is how many nodes vote in Raft; the rest replicate as non-voters.
const maxVoters = 5

// leadershipLoop runs the leader's duties while this node leads. Like
// Nomad's leader, it first issues a Raft barrier: only once every entry of
// earlier terms is applied to the local replica does it establish
// leadership (the dispatcher and the duties); until then the replica may
// lag what the mesh committed, and nothing may be decided from it.
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
			n.leading.notify()
			if isLeader {
				ctx, cancel := context.WithCancel(n.ctx)
				stop = cancel
				n.goFunc(func() { n.establish(ctx) })
			} else {
				n.log.Info("no longer leading")
			}
		}
	}
}

// barrierTimeout bounds one barrier attempt; a failed one is retried while
// this node still leads.
const barrierTimeout = 30 * time.Second

// establish waits for the barrier, then starts the leader's loops.
func (n *Node) establish(ctx context.Context) {
	start := time.Now()
	for {
		f := n.raft.Barrier(barrierTimeout)
		done := make(chan error, 1)
		go func() { done <- f.Error() }()
		var err error
		select {
		case <-ctx.Done():
			return
		case err = <-done:
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || !n.IsLeader() {
			return
		}
		n.log.Warn("leader: raft barrier failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return
	}
	n.log.Info("leading the mesh", "index", n.fsm.Index(), "barrier", time.Since(start).Round(time.Millisecond))
	n.lead(ctx)
}

// lead starts the leader's loops; they end when ctx is cancelled.
func (n *Node) lead(ctx context.Context) {
	d := leader.NewDispatcher(leader.DispatcherConfig{
		Propose: func(b []byte) raft.ApplyFuture { return n.raft.Apply(b, 10*time.Second) },
		Members: n.gossip.Members,
		Ledger:  n.fsm,
		Clock:   n.cfg.Clock,
		Limits: leader.Limits{MaxJobTasks: n.cfg.MaxTasksPerJob, MaxOpenJobs: n.cfg.MaxOpenJobs, MaxJobBlobBytes: n.cfg.MaxJobBlobBytes,
			MaxAttempts: n.cfg.MaxAttempts, MaxInfra: n.cfg.MaxInfraRetries, QuarantineAfter: n.cfg.QuarantineAfter},
		Log:       n.log,
		Gate:      n.schemaReady,
		Frozen:    n.frozenWhy,
		Committed: n.metrics.RaftCommitted,
		Stopping:  n.ctx.Done(),
	})
	n.mu.Lock()
	n.dispatcher = d
	n.mu.Unlock()
	n.leading.notify()
	n.goFunc(func() {
		d.Run(ctx)
		n.mu.Lock()
		if n.dispatcher == d {
			n.dispatcher = nil
		}
		n.mu.Unlock()
		n.leading.notify()
	})
	for _, duty := range n.duties(d) {
		n.goFunc(func() { duty.Run(ctx) })
	}
}

// duties are the leader's loops (node/leader), each writing only through
// the dispatcher.
func (n *Node) duties(d *leader.Dispatcher) []leader.Duty {
	duties := []leader.Duty{
		leader.Membership{Raft: n.raft, Members: n.gossip, Self: raft.ServerID(n.id.ID),
			DeadAfter: n.cfg.DeadServerAfter, MaxVoters: maxVoters, TrustAbsenceAt: n.started.Add(lossGrace),
			CaughtUp: func(ctx context.Context, m gossip.Member) bool { return n.caughtUp(ctx, m.Meta.Raft) },
			Answers:  n.answersAsItself,
			Clock:    clock.Real{}, Log: n.log}, // real time, as gossip's own timers: a test's manual clock drives the ledger's deadlines, not this
		leader.Queue{Ledger: n.fsm, Members: n.gossip, Kick: d.Kick},
		leader.Deadlines{Ledger: n.fsm, Writer: d, Members: n.gossip, Clock: n.cfg.Clock, Log: n.log},
		leader.Retention{Ledger: n.fsm, Writer: d, Clock: n.cfg.Clock, Log: n.log,
			BlobRetention: n.cfg.BlobRetention, LogRetention: n.cfg.LogRetention, JobHistory: n.cfg.JobHistory, Settle: settleDelay},
		leader.Loss{Ledger: n.fsm, Writer: d, Members: n.gossip, Clock: n.cfg.Clock, Log: n.log,
			MaxAttempts: n.cfg.MaxAttempts, MaxInfra: n.cfg.MaxInfraRetries, Grace: lossGrace - time.Since(n.started), Answers: n.answersAsItself},
		leader.Replication{Ledger: n.fsm, Members: n.gossip, Replicas: n.cfg.BlobReplicas, Pull: n.askPull, Go: n.goFunc,
			Settle: settleDelay, Backoff: 2 * time.Second, Log: n.log},
	}
	if g := n.githubDuty(d); g != nil {
		duties = append(duties, g)
	}
	return duties
}

// broadcast wakes every waiter at once: wait returns a channel that the
// next notify closes.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// currentDispatcher returns the dispatcher if this node leads.
func (n *Node) currentDispatcher() *leader.Dispatcher {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dispatcher
}

// promoteLag is how far behind the leader's applied index a non-voter may
// be and still be promoted.
const promoteLag = 64

// caughtUp reports whether the member whose peer port is raftAddr has
// applied the ledger to within promoteLag of this (leader) node.
func (n *Node) caughtUp(ctx context.Context, raftAddr string) bool {
	idx, ok := n.peerIndex(peerURL(raftAddr))
	return ok && idx+promoteLag >= n.fsm.Index()
}

func memberMap(ms []gossip.Member) map[string]gossip.Member {
	out := make(map[string]gossip.Member, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// errNotLeader is the dispatcher's answer when leadership moved; callers
// retry on the new leader.
var errNotLeader = leader.ErrNotLeader
