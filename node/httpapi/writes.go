package httpapi

import (
	"fmt"
	"io"
	"net/http"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/raftfsm"
)

// A node's writes, on the leader (peer port, cluster token):
// POST /v1/internal/submit takes a command (node/peer.Client.Submit), POST
// /v1/internal/report a report (older binaries, and blob store resets,
// which the leader's current state decides).

// handleReport turns a node's report into its command and writes it.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var rep api.Report
	if !DecodeBody(w, r, &rep) {
		return
	}
	c, err := s.Reports.ReportCommand(rep)
	if err != nil {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	if _, err := s.Writer.Submit(r.Context(), c); err != nil {
		WriteLedgerError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion})
}

// Forwardable says whether a node may submit c to the leader: what a node
// records of its own work (attempts, copies, sealed logs). Spawns, closes,
// approvals and the leader's own commands come through their routes
// (authentication, quotas) or from the leader's duties.
func Forwardable(c raftfsm.Command) error {
	parts := []raftfsm.Command{c}
	if c.Type == raftfsm.CmdBatch {
		parts = c.Batch
	}
	for _, p := range parts {
		switch p.Type {
		case raftfsm.CmdTaskStarted, raftfsm.CmdTaskFinished, raftfsm.CmdRequeue,
			raftfsm.CmdBlobAdded, raftfsm.CmdBlobDropped, raftfsm.CmdLogSealed:
		default:
			return fmt.Errorf("submit: a node does not submit %s commands: they come from the API or the leader", p.Type)
		}
	}
	return nil
}

// handleSubmit writes a node's command. It is decoded as Apply decodes
// (fields this binary does not know are ignored); the answer carries the
// result, refusals included, and the index it was applied at.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		WriteBodyError(w, fmt.Errorf("submit: %w", err))
		return
	}
	c, err := raftfsm.Decode(b)
	if err == nil {
		err = Forwardable(c)
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	res, err := s.Writer.Submit(r.Context(), c)
	switch {
	case err != nil && raftfsm.RefusalCode(err) == "":
		WriteLedgerError(w, err) // not known to be applied: the node tries again
		return
	case err != nil:
		res.Err = err // a refusal: the answer says so
	}
	WriteJSON(w, http.StatusOK, peer.SubmitAnswer{SchemaVersion: api.SchemaVersion, Index: s.Ledger.Index(), Result: peer.ToWire(res)})
}
