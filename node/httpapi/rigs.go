package httpapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/raftfsm"
)

// Rigs, a node serving a topic as the ledger tracks its health: GET
// /v1/rigs (read), POST /v1/rigs/{node}/{topic}/quarantine?reason= and
// /release (operate, on the leader). A quarantined rig gets no new task of
// its topic (the picker passes it over); the ledger quarantines one itself
// after --quarantine-after infrastructure failures in a row.

func rigView(r *raftfsm.Rig) api.Rig {
	return api.Rig{Node: r.Node, Topic: r.Topic, Quarantined: r.Quarantined, Reason: r.Reason, By: r.By, Since: r.Since, InfraStreak: r.InfraStreak}
}

func (s *Server) rig(node, topic string) (api.Rig, bool) {
	var out api.Rig
	found := false
	s.Ledger.Read(func(st *raftfsm.State, _ uint64) {
		if r := st.Rigs[raftfsm.RigKey(node, topic)]; r != nil {
			out, found = rigView(r), true
		}
	})
	return out, found
}

func (s *Server) handleRigs(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out := api.Rigs{SchemaVersion: api.SchemaVersion, Rigs: []api.Rig{}}
	s.Ledger.Read(func(st *raftfsm.State, _ uint64) {
		for _, rg := range st.Rigs {
			out.Rigs = append(out.Rigs, rigView(rg))
		}
	})
	slices.SortFunc(out.Rigs, func(a, b api.Rig) int { return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Topic, b.Topic)) })
	WriteJSON(w, http.StatusOK, out)
}

// rigPath reads {node} and {topic}; a bad one is answered with a 400.
func rigPath(w http.ResponseWriter, r *http.Request) (node, topic string, ok bool) {
	node, topic = r.PathValue("node"), r.PathValue("topic")
	if node == "" || topic == "" || strings.ContainsAny(node+topic, " \t\n") || len(node) > 200 || len(topic) > 200 {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("want /v1/rigs/NODE/TOPIC/quarantine or /release"))
		return "", "", false
	}
	return node, topic, true
}

// who names the operator of a rig change in the ledger.
func who(p auth.Principal) string {
	if p.Cluster {
		return "operator (cluster token)"
	}
	return "operator (" + p.Role + " token)"
}

func (s *Server) handleQuarantine(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	node, topic, ok := rigPath(w, r)
	if !ok {
		return
	}
	reason := strings.Join(strings.Fields(r.URL.Query().Get("reason")), " ")
	if reason == "" || len(reason) > 1000 {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("quarantine: say why, in at most 1000 characters (--reason TEXT): it is shown wherever the rig is"))
		return
	}
	c := raftfsm.Command{Type: raftfsm.CmdQuarantine, Quarantine: &raftfsm.Quarantine{Node: node, Topic: topic, Reason: reason, By: who(p)}}
	if _, err := s.Writer.Submit(r.Context(), c); err != nil {
		WriteLedgerError(w, err)
		return
	}
	rg, _ := s.rig(node, topic)
	s.log().Warn("rig quarantined", "node", node, "topic", topic, "reason", reason, "by", rg.By)
	WriteJSON(w, http.StatusOK, rg)
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	node, topic, ok := rigPath(w, r)
	if !ok {
		return
	}
	c := raftfsm.Command{Type: raftfsm.CmdRelease, Release: &raftfsm.Release{Node: node, Topic: topic, By: who(p)}}
	if _, err := s.Writer.Submit(r.Context(), c); err != nil {
		if errors.Is(err, raftfsm.ErrConflict) {
			err = fmt.Errorf("release: %s is not quarantined for %s (ourci-node rig list)", node, topic)
			WriteError(w, http.StatusConflict, api.CodeConflict, err)
			return
		}
		WriteLedgerError(w, err)
		return
	}
	rg, _ := s.rig(node, topic)
	s.log().Info("rig released", "node", node, "topic", topic, "by", rg.By)
	WriteJSON(w, http.StatusOK, rg)
}
