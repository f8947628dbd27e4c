package leader

import (
	"context"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/raftfsm"
)

// A Duty is one of the leader's loops.
type Duty interface {
	// Name names the duty in logs.
	Name() string
	// Run does the duty until ctx ends (leadership lost, node stopping).
	Run(ctx context.Context)
}

// Ledger is the leader's replica, as a duty reads it.
type Ledger interface {
	Read(fn func(s *raftfsm.State, index uint64))
	Watch() (uint64, <-chan struct{})
}

// Writer is the one write path: a command is applied (nil error, its
// result) or refused (the ledger's error values, errors.Is-able) or not
// known to be applied (any other error: the duty tries again later).
type Writer interface {
	Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error)
}

// Members is the mesh as gossip sees it.
type Members interface {
	Members() []gossip.Member
	// Watch returns a channel closed at the next change.
	Watch() <-chan struct{}
}

// Func is a duty that is a function (the node's own loops).
type Func struct {
	Label string
	F     func(ctx context.Context)
}

func (f Func) Name() string            { return f.Label }
func (f Func) Run(ctx context.Context) { f.F(ctx) }

// memberMap indexes members by name.
func memberMap(ms []gossip.Member) map[string]gossip.Member {
	out := make(map[string]gossip.Member, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
