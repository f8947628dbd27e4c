package node

import (
	"context"

	"github.com/ourci/ourci/raftfsm"
)

// FollowLogCopy waits for this node's copy of an attempt's output and
// follows it until it is whole (its last chunk came: done), or dropped,
// or ctx is done, and returns what it held then. It holds on to the copy
// it found, so a copy dropped the moment it became whole (its node's seal
// recorded) is still seen whole.
func (n *Node) FollowLogCopy(ctx context.Context, task string, attempt int) (b []byte, done bool) {
	k := liveKey(task, attempt)
	var c *liveCopy
	for c == nil {
		n.live.mu.Lock()
		c = n.live.m[k]
		if n.live.added == nil {
			n.live.added = make(chan struct{})
		}
		added := n.live.added
		n.live.mu.Unlock()
		if c != nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-added:
		}
	}
	for {
		n.live.mu.Lock()
		grew, held := c.grew, n.live.m[k] == c
		n.live.mu.Unlock()
		if c.r.Done() || !held {
			return c.r.Bytes(), c.r.Done()
		}
		select {
		case <-ctx.Done():
			return c.r.Bytes(), c.r.Done()
		case <-grew:
		}
	}
}

// Writer is this node's write path (write.go).
func (n *Node) Writer() interface {
	Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error)
} {
	return n.writer()
}
