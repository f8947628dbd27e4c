package peer

import (
	"context"
	"errors"
	"time"
)

// Directory is what the client needs to address the leader: who leads,
// by the local replica's view, and a live member's peer URL.
type Directory interface {
	LeaderName() string
	MemberURL(name string) (string, bool)
}

// ErrNoLeader: no leader was known (or reachable) within the wait.
var ErrNoLeader = errors.New("peer: the mesh has no leader right now")

// LeaderURL returns the leader's peer URL, waiting up to wait for one to
// be known; it looks every 20 ms (a new leader is known within a
// heartbeat or two).
func LeaderURL(ctx context.Context, d Directory, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		if name := d.LeaderName(); name != "" {
			if u, ok := d.MemberURL(name); ok {
				return u, nil
			}
		}
		if time.Now().After(deadline) {
			return "", ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
