package node

import (
	"encoding/hex"
	"net/http"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// handleLedger answers this replica's applied index and a digest of its
// whole ledger: replicas at the same index must show the same hash.
func (n *Node) handleLedger(w http.ResponseWriter, r *http.Request, p Principal) {
	var out api.Ledger
	n.fsm.Read(func(s *raftfsm.State, idx uint64) {
		h := s.Hash()
		out = api.Ledger{SchemaVersion: api.SchemaVersion, Node: n.cfg.Name, Index: idx, Hash: hex.EncodeToString(h[:]), Jobs: len(s.Jobs), Tasks: len(s.Tasks)}
	})
	writeJSON(w, http.StatusOK, out)
}
