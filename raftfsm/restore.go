package raftfsm

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"
)

// RestoreState makes s the ledger of every replica: this node must lead.
// It is raft's user restore (Raft.Restore): the leader writes s as a new
// snapshot past the end of its log and installs it in its own FSM, and
// every follower gets it as an InstallSnapshot, since the log has a hole
// before it. Raft.Restore panics if the FSM cannot restore what it was
// given, so s must be a State that decoded completely (ReadBackup): it is
// encoded afresh here, in the current format.
//
// The stream's header index is the log's last index when the restore
// begins, so the FSM's applied index does not go back (much) on the
// replicas that install it; then an empty batch is committed, which moves
// every replica's applied index past everything it applied before the
// restore. Read-your-writes and the runner's catch-up compare applied
// indexes: a follower that answers at or past the index RestoreState
// returns holds the restored ledger. It returns that index.
func (r *Raft) RestoreState(s *State, timeout time.Duration) (uint64, error) {
	tmp, err := os.CreateTemp(r.dir, ".restore-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("raftfsm: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	base := r.LastIndex()
	if err := WriteSnapshot(tmp, s, base); err != nil {
		return 0, fmt.Errorf("raftfsm: restore: %w", err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("raftfsm: restore: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("raftfsm: restore: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: base, Size: size}
	if err := r.Raft.Restore(meta, tmp, timeout); err != nil {
		return 0, fmt.Errorf("raftfsm: restore: %w", err)
	}
	noop, err := Encode(Command{Type: CmdBatch})
	if err != nil {
		return 0, err
	}
	f := r.Apply(noop, timeout)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("raftfsm: restore: restored, but the entry after it: %w", err)
	}
	return f.Index(), nil
}
