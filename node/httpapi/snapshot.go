package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/raftfsm"
)

// The operator's backup of the ledger (`ourci-node operator snapshot save`
// and `restore`): GET and POST /v1/operator/snapshot, cluster token only,
// served by the leader (a follower relays them, body unread).
//
// A save is a snapshot file (raftfsm.Backup): the leader's ledger once it
// has applied everything committed before the request. A restore reads
// the whole file into a throwaway ledger first (size, SHA-256, and every
// record must decode), so a damaged file is refused and changes nothing;
// then Snapshots.Restore hands it to Raft, which installs it on every
// replica. What the ledger learned after the save is gone: jobs and tasks
// spawned since are forgotten, tasks that ended since are again as they
// were (a task running or assigned in the file runs again, or is handed
// back as abandoned and requeued), blobs put since lose their records.

// Snapshots is the leader's side of a backup and a restore.
type Snapshots interface {
	// Barrier waits until everything committed before the call is
	// applied here.
	Barrier(timeout time.Duration) error
	// Backup is the ledger as a snapshot file.
	Backup() (*raftfsm.Backup, error)
	// Restore installs s on every replica and returns the index it took.
	Restore(s *raftfsm.State, timeout time.Duration) (uint64, error)
}

// MaxSnapshotFile bounds a restore's body (LeaderOnly's MaxBody is for
// JSON requests; a ledger is far larger).
const MaxSnapshotFile = 4 << 30

// restoreTimeout bounds Raft's part of a restore. It stays under the 30 s
// a relaying follower waits for the leader's answer.
const restoreTimeout = 25 * time.Second

type rawBodyKey struct{}

// snapshotRoute is LeaderOnly for the snapshot routes, keeping the request
// body as it came for the handler, which sets its own bound.
func (s *Server) snapshotRoute(h Handler) Handler {
	lo := s.LeaderOnly(h)
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		lo(w, r.WithContext(context.WithValue(r.Context(), rawBodyKey{}, r.Body)), p)
	}
}

// handleSnapshotSave streams the leader's ledger as a snapshot file.
func (s *Server) handleSnapshotSave(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	// Everything committed before the request is applied here first.
	if err := s.Snapshots.Barrier(10 * time.Second); err != nil {
		WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, fmt.Errorf("the leader could not apply what the mesh committed: %w", err))
		return
	}
	b, err := s.Snapshots.Backup()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	h := b.Header()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(b.Len(), 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="ourci-%d.snap"`, h.Index))
	w.WriteHeader(http.StatusOK)
	if _, err := b.WriteTo(w); err != nil {
		s.log().Warn("operator: snapshot save broke off", "index", h.Index, "err", err)
		return
	}
	s.log().Info("operator: snapshot saved", "index", h.Index, "bytes", b.Len(), "jobs", h.Jobs, "tasks", h.Tasks, "blobs", h.Blobs)
}

// handleSnapshotRestore replaces the ledger on every replica with the
// snapshot file in the body.
func (s *Server) handleSnapshotRestore(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	body, ok := r.Context().Value(rawBodyKey{}).(io.ReadCloser)
	if !ok {
		body = r.Body
	}
	h, st, err := raftfsm.ReadBackup(http.MaxBytesReader(w, body, MaxSnapshotFile))
	if err != nil {
		WriteBodyError(w, fmt.Errorf("%w; nothing was restored", err))
		return
	}
	// From here an error cannot say whether raft installed the snapshot
	// (raft.Restore answers ErrNotLeader both before and after).
	idx, err := s.Snapshots.Restore(st, restoreTimeout)
	if err != nil {
		s.log().Error("operator: snapshot restore failed", "snapshot_index", h.Index, "err", err)
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, fmt.Errorf("%w; the ledger may or may not have been replaced (ourci-node status shows which); restoring the same file again is safe", err))
		return
	}
	s.log().Warn("operator: ledger restored from a snapshot file", "index", idx, "snapshot_index", h.Index, "saved", h.Saved, "jobs", h.Jobs, "tasks", h.Tasks, "blobs", h.Blobs)
	WriteJSON(w, http.StatusOK, api.SnapshotRestored{
		SchemaVersion: api.SchemaVersion, Index: idx, SnapshotIndex: h.Index, Saved: h.Saved, SHA256: h.SHA256,
		Jobs: h.Jobs, Tasks: h.Tasks, Blobs: h.Blobs,
	})
}
