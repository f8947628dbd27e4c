package httpapi

import (
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/raftfsm"
)

// The node and its replica: GET /v1/health (no token: load balancers and
// peers ask it), GET /v1/ledger (cluster token) and GET /metrics (cluster
// or metrics token).

// Health is what the health route reports of its node.
type Health interface {
	Name() string
	// Unhealthy says why the node cannot take work ("" when it can).
	Unhealthy() string
	// Ready reports whether the replica caught up since start.
	Ready() bool
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := peer.Health{SchemaVersion: api.SchemaVersion, Node: s.Health.Name(), OK: true, Index: s.Ledger.Index(), Ready: s.Health.Ready()}
	h.Established = s.Lead.IsLeader() && s.Lead.Dispatching()
	code := http.StatusOK
	if why := s.Health.Unhealthy(); why != "" {
		h.OK, h.Reason, code = false, why, http.StatusServiceUnavailable
	}
	WriteJSON(w, code, h)
}

// handleLedger answers this replica's applied index and a digest of its
// whole ledger: replicas at the same index must show the same hash.
func (s *Server) handleLedger(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var out api.Ledger
	s.Ledger.Read(func(st *raftfsm.State, idx uint64) {
		h := st.Hash()
		out = api.Ledger{SchemaVersion: api.SchemaVersion, Node: s.Health.Name(), Index: idx, Hash: hex.EncodeToString(h[:]), Jobs: len(st.Jobs), Tasks: len(st.Tasks)}
	})
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if s.Metrics == nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, errors.New("node: metrics are not set up"))
		return
	}
	s.Metrics.ServeHTTP(w, r)
}
