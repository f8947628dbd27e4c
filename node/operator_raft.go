package node

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

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

func (n *Node) handleRaftPeers(w http.ResponseWriter, r *http.Request, p Principal) {
	peers, err := n.raftPeers()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	writeJSON(w, http.StatusOK, peers)
}

// handleRemovePeer removes the servers named by ?name= (a node name: every
// server of that name) or ?id= (one Raft ID). A live member, or the leader,
// is refused: drain a node that should leave; the autopilot adds a live
// member back anyway.
func (n *Node) handleRemovePeer(w http.ResponseWriter, r *http.Request, p Principal) {
	name, id := r.URL.Query().Get("name"), r.URL.Query().Get("id")
	if (name == "") == (id == "") {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("remove-peer: name one node (name=NAME) or one Raft server (id=ID)"))
		return
	}
	peers, err := n.raftPeers()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	var ids []raft.ServerID
	for _, pr := range peers.Peers {
		if pr.ID != id && (name == "" || pr.Name != name) {
			continue
		}
		switch {
		case pr.Leader:
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("remove-peer: %s leads the mesh: drain it (ourci-node drain on it) or stop it, and remove it once another node leads", pr.ID))
			return
		case pr.Alive:
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("remove-peer: %s is alive: to take it out, run ourci-node drain on it (a live member is added back)", pr.ID))
			return
		}
		ids = append(ids, raft.ServerID(pr.ID))
	}
	if len(ids) == 0 {
		what := "name " + name
		if id != "" {
			what = "ID " + id
		}
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("remove-peer: no Raft server with %s (ourci-node operator raft list-peers)", what))
		return
	}
	out := api.RemovedPeers{SchemaVersion: api.SchemaVersion}
	for _, sid := range ids {
		if err := n.raft.RemoveServer(sid, 0, 10*time.Second).Error(); err != nil {
			writeLedgerError(w, fmt.Errorf("remove-peer %s: %w", sid, err))
			return
		}
		n.log.Warn("operator: removed a raft server", "server", string(sid))
		out.Removed = append(out.Removed, string(sid))
	}
	writeJSON(w, http.StatusOK, out)
}
