package raftfsm

import (
	"sync"

	"github.com/hashicorp/raft"
)

// gatedTransport is the Raft transport with raft's heartbeat fast path
// behind a gate that Close shuts before it closes the log store.
//
// Raft answers a heartbeat on the transport's connection goroutine, not
// its own, and checks for shutdown only on entry: a heartbeat that passed
// the check just before Shutdown goes on to save the leader's term after
// Shutdown returned. Were the store closed by then, raft panics ("failed
// to save current term: database not open"), taking the whole process
// with it; on a loaded machine that window is wide (seen in the bench
// when a node was killed while a new leader sent it heartbeats). With the
// gate, Close waits for a heartbeat in progress, and later ones are
// answered with ErrRaftShutdown.
type gatedTransport struct {
	*raft.NetworkTransport
	mu     sync.RWMutex
	closed bool
}

// SetHeartbeatHandler implements raft.Transport: cb runs behind the gate.
func (g *gatedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		g.mu.RLock()
		defer g.mu.RUnlock()
		if g.closed {
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
		cb(rpc)
	})
}

// shut waits until no heartbeat is being handled and turns away every
// later one.
func (g *gatedTransport) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
