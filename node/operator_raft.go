package node

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/leader"
)

// The operator's view of the Raft configuration: list the servers, remove
// a dead one by hand (the autopilot does so by itself after
// --dead-server-after; this is for an operator who knows a machine is gone
// for good, or a mesh whose autopilot may not act because too few voters
// are alive). Both run on the leader (followers relay) with the cluster
// token.

func (n *Node) raftPeers() (api.RaftPeers, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return api.RaftPeers{}, fmt.Errorf("node: raft configuration: %w", err)
	}
	servers := f.Configuration().Servers
	members := n.gossip.Members()
	out := api.RaftPeers{SchemaVersion: api.SchemaVersion, Leader: n.leaderName(), Index: n.fsm.Index(), Quorum: quorumOf(servers, members), Peers: []api.RaftPeer{}}
	_, leaderID := n.raft.LeaderWithID()
	byName := memberMap(members)
	for _, s := range servers {
		p := api.RaftPeer{Name: leader.NameOfID(s.ID), ID: string(s.ID), Address: string(s.Address), Suffrage: "nonvoter", Leader: s.ID == leaderID}
		if s.Suffrage == raft.Voter {
			p.Suffrage = "voter"
		}
		if m, ok := byName[p.Name]; ok {
			if leader.MemberID(m) == s.ID {
				p.Alive, p.Unhealthy, p.NoVote = true, m.Meta.Unhealthy, m.Meta.NoVote
			} else {
				p.Stale = true
			}
		}
		out.Peers = append(out.Peers, p)
	}
	slices.SortFunc(out.Peers, func(a, b api.RaftPeer) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	return out, nil
}
