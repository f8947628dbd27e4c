package raftfsm

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/faults"
	"github.com/ourci/ourci/node/meshtls"
)

// tlsStream is the raft.StreamLayer: Raft on a node's peer port over
// mutual TLS (meshtls), where both ends hold a node certificate of the mesh
// CA. Incoming connections arrive already handshaken from the port's Mux;
// outgoing ones complete their handshake in Dial.
type tlsStream struct {
	net.Listener // the Mux's Raft side
	advertise    net.Addr
	peer         *meshtls.Peer
	cut          func(to string) bool // tests' faults (RaftConfig.Cut); nil in production
}

// ErrAuth marks a Raft peer that failed the mutual-TLS handshake.
var ErrAuth = errors.New("raftfsm: raft peer failed authentication")

func (s *tlsStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

// Dial connects to another node's peer port and speaks Raft there.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.cut != nil {
		return faults.Dial(s.cut, string(addr), func() (net.Conn, error) { return s.dial(addr, timeout) })
	}
	return s.dial(addr, timeout)
}

func (s *tlsStream) dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := s.peer.Dial(string(addr), meshtls.ProtoRaft, timeout)
	if err != nil {
		if errors.Is(err, meshtls.ErrHandshake) {
			return nil, fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return nil, err
	}
	return c, nil
}
