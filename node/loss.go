package node

import (
	"context"
	"time"

	"github.com/ourci/ourci/node/leader"
)

// lossGrace is how long a node's gossip runs before absence means loss
// (leader.Loss, and the autopilot's removal of dead servers).
const lossGrace = 5 * time.Second

// answersAsItself reports whether the Raft server named node answers its
// health at its peer port (2 s at most) and names itself node: alive,
// though gossip may list it as gone.
func (n *Node) answersAsItself(ctx context.Context, node string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if leader.NameOfID(s.ID) != node {
			continue
		}
		h, ok := n.peers.Health(ctx, peerURL(string(s.Address)))
		return ok && h.Node == node
	}
	return false
}
