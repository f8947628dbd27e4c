package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
)

// The Raft group and drains: GET /v1/operator/raft, POST
// /v1/operator/raft/remove-peer, POST /v1/drain, and the leader's POST
// /v1/internal/leave (a draining node asks to leave the group).

func (s *Server) handleRaftPeers(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	peers, err := s.Operator.RaftPeers()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	WriteJSON(w, http.StatusOK, peers)
}

// handleRemovePeer removes the servers named by ?name= (a node name: every
// server of that name) or ?id= (one Raft ID). A live member, or the leader,
// is refused: drain a node that should leave; the autopilot adds a live
// member back anyway.
func (s *Server) handleRemovePeer(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name, id := r.URL.Query().Get("name"), r.URL.Query().Get("id")
	if (name == "") == (id == "") {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("remove-peer: name one node (name=NAME) or one Raft server (id=ID)"))
		return
	}
	peers, err := s.Operator.RaftPeers()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	var ids []string
	for _, pr := range peers.Peers {
		if pr.ID != id && (name == "" || pr.Name != name) {
			continue
		}
		switch {
		case pr.Leader:
			WriteError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("remove-peer: %s leads the mesh: drain it (ourci-node drain on it) or stop it, and remove it once another node leads", pr.ID))
			return
		case pr.Alive:
			WriteError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("remove-peer: %s is alive: to take it out, run ourci-node drain on it (a live member is added back)", pr.ID))
			return
		}
		ids = append(ids, pr.ID)
	}
	if len(ids) == 0 {
		what := "name " + name
		if id != "" {
			what = "ID " + id
		}
		WriteError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("remove-peer: no Raft server with %s (ourci-node operator raft list-peers)", what))
		return
	}
	out := api.RemovedPeers{SchemaVersion: api.SchemaVersion}
	for _, sid := range ids {
		if err := s.Operator.RemoveServer(sid, 10*time.Second); err != nil {
			WriteLedgerError(w, fmt.Errorf("remove-peer %s: %w", sid, err))
			return
		}
		s.log().Warn("operator: removed a raft server", "server", sid)
		out.Removed = append(out.Removed, sid)
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := s.Operator.Drain(r.Context()); err != nil {
		WriteError(w, http.StatusServiceUnavailable, api.CodeInternal, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "node": s.Operator.Name(), "drained": true})
}

// handleLeave (leader) removes a draining member from the Raft group.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	member := r.URL.Query().Get("member")
	if member == "" {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("leave: which member?"))
		return
	}
	if member == s.Operator.Name() {
		WriteError(w, http.StatusConflict, api.CodeConflict, errors.New("leave: the leader cannot remove itself; transfer leadership first"))
		return
	}
	for _, id := range s.Operator.ServersNamed(member) {
		if err := s.Operator.RemoveServer(id, 10*time.Second); err != nil {
			WriteLedgerError(w, err)
			return
		}
	}
	s.log().Info("removed a drained member from raft", "member", member)
	WriteJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "removed": member})
}
