package raftfsm

import (
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// voteGuard makes a node that is not a voter in its own configuration
// refuse every vote and pre-vote. hashicorp/raft asks for votes by address
// and grants them from any server, voter or not, and from one with an empty
// configuration (for bootstraps). A machine whose data directory was wiped
// comes back at its old address under a new Raft ID, with an empty log and
// no configuration: a candidate that still lists the old ID at that address
// would count its vote as the old voter's, and a candidate lacking
// acknowledged entries could win. Only a voter votes here. (OurCI never
// bootstraps several nodes at once, the one case an empty configuration
// must vote for.)
type voteGuard struct {
	*gatedTransport
	ch   chan raft.RPC
	stop chan struct{} // closed by Raft.Close
	raft atomic.Pointer[raft.Raft]
	id   raft.ServerID
}

func newVoteGuard(t *gatedTransport, id raft.ServerID) *voteGuard {
	return &voteGuard{gatedTransport: t, ch: make(chan raft.RPC), stop: make(chan struct{}), id: id}
}

// Consumer implements raft.Transport: the RPCs raft is given.
func (g *voteGuard) Consumer() <-chan raft.RPC { return g.ch }

// run passes RPCs on to r until stop is closed, answering the votes this
// node may not give.
func (g *voteGuard) run(r *raft.Raft) {
	g.raft.Store(r)
	for {
		var rpc raft.RPC
		select {
		case rpc = <-g.NetworkTransport.Consumer():
		case <-g.stop:
			return
		}
		switch req := rpc.Command.(type) {
		case *raft.RequestVoteRequest:
			if !g.voter() {
				rpc.Respond(&raft.RequestVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
				continue
			}
		case *raft.RequestPreVoteRequest:
			if !g.voter() {
				rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
				continue
			}
		}
		select {
		case g.ch <- rpc:
		case <-g.stop:
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
	}
}

func (g *voteGuard) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(g.id), Addr: g.EncodePeer(g.id, g.LocalAddr())}
}

// voter reports whether this node is a voter in its latest configuration.
func (g *voteGuard) voter() bool {
	r := g.raft.Load()
	if r == nil {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == g.id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
