package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
)

// RaftMembership is what the autopilot changes: the Raft configuration
// (*raft.Raft has these methods).
type RaftMembership interface {
	GetConfiguration() raft.ConfigurationFuture
	AddNonvoter(id raft.ServerID, addr raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	AddVoter(id raft.ServerID, addr raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	DemoteVoter(id raft.ServerID, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	RemoveServer(id raft.ServerID, prevIndex uint64, timeout time.Duration) raft.IndexFuture
}

// Membership is the autopilot as a duty (autopilot.go): it brings the
// Raft configuration in line with gossip whenever membership changes,
// soon again while a promotion or a dead server's removal is pending.
type Membership struct {
	Raft    RaftMembership
	Members Members
	Self    raft.ServerID // the leader: never removed or demoted
	// DeadAfter is how long a voter is seen dead before it is removed
	// (--dead-server-after); MaxVoters the voters wanted.
	DeadAfter time.Duration
	MaxVoters int
	// TrustAbsenceAt is when the leader's gossip has run long enough
	// that a member missing from it is dead, not merely not heard from.
	TrustAbsenceAt time.Time
	// CaughtUp reports whether a member's replica is close enough to the
	// leader's to be promoted.
	CaughtUp func(ctx context.Context, m gossip.Member) bool
	// Answers reports whether the server named node answers, as itself,
	// at its peer port: one gossip sees dead but that answers is not
	// removed (it missed its gossip probes; Loss spares its attempts the
	// same way), and its time dead starts again. Nil: gossip decides.
	Answers func(ctx context.Context, node string) bool
	Clock   clock.Clock
	Log     *slog.Logger
}

func (Membership) Name() string { return "membership" }

// Run reconciles until ctx ends. The dead servers' clocks start again
// each term: a new leader waits DeadAfter anew before removing one.
func (a Membership) Run(ctx context.Context) {
	deadSince := map[raft.ServerID]time.Time{}
	for {
		ch := a.Members.Watch()
		wait := 10 * time.Second
		if a.reconcile(ctx, deadSince) {
			wait = 200 * time.Millisecond // a promotion is pending
		} else if len(deadSince) > 0 || a.Clock.Now().Before(a.TrustAbsenceAt) {
			wait = time.Second // a dead server's time may run out
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-a.Clock.After(wait):
		}
	}
}

// reconcile plans the autopilot's changes and makes them, one at a time
// (Raft commits each configuration change before the next); it reports
// whether a member still waits for promotion.
func (a Membership) reconcile(ctx context.Context, deadSince map[raft.ServerID]time.Time) (pending bool) {
	f := a.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		a.Log.Warn("leader: raft configuration", "err", err)
		return false
	}
	now := a.Clock.Now()
	acts, pending := planRaft(apInput{
		Servers: f.Configuration().Servers, Members: a.Members.Members(), Self: a.Self,
		Now: now, DeadSince: deadSince, TrustAbsence: !now.Before(a.TrustAbsenceAt),
		DeadAfter: a.DeadAfter, MaxVoters: a.MaxVoters,
		CaughtUp: func(m gossip.Member) bool { return a.CaughtUp(ctx, m) },
	})
	for _, act := range acts {
		if ctx.Err() != nil {
			return false
		}
		if act.Kind == apRemove && act.Dead && a.Answers != nil && a.Answers(ctx, NameOfID(act.ID)) {
			deadSince[act.ID] = now
			a.Log.Warn("autopilot: gossip sees a server dead, but it answers at its peer port: not removed", "server", string(act.ID))
			continue
		}
		var err error
		switch act.Kind {
		case apAddNonvoter:
			err = a.Raft.AddNonvoter(act.ID, act.Addr, 0, 5*time.Second).Error()
		case apMoveVoter, apPromote:
			err = a.Raft.AddVoter(act.ID, act.Addr, 0, 5*time.Second).Error()
		case apDemote:
			err = a.Raft.DemoteVoter(act.ID, 0, 5*time.Second).Error()
		case apRemove:
			err = a.Raft.RemoveServer(act.ID, 0, 5*time.Second).Error()
		}
		if err != nil {
			a.Log.Warn("autopilot: raft membership change failed", "change", act.Kind.String(), "server", string(act.ID), "err", err)
			return true // look again soon
		}
		lvl := slog.LevelInfo
		if act.Kind == apRemove {
			lvl = slog.LevelWarn
			delete(deadSince, act.ID)
		}
		a.Log.Log(ctx, lvl, "autopilot: "+act.Kind.String(), "server", string(act.ID), "addr", string(act.Addr), "why", act.Reason)
	}
	return pending
}
