package node

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// Logs outlive their node: once an attempt is over, its node seals the
// log (node/tasklog's sealed form: zstd frames, every line timed) into a
// content-addressed blob and records it in the ledger against (task,
// attempt) (CmdLogSealed, schema 2). The blob is then replicated like an
// artifact (leader.Replication, to --blob-replicas holders) and any node
// serves the log from a copy of it, fetched from a holder when it has
// none, without asking the node that ran it. The node's own raw file goes
// once the record is acknowledged. Until then, and in a mesh whose voters
// do not all know schema 2 yet, the log is read where it ran (relayed).

// keepLog seals a finished attempt's log, stores it as a blob and records
// it. It gives up after a bounded time (the leader away, a voter on an
// older binary): the raw log stays, read where it ran.
func (n *Node) keepLog(t *raftfsm.Task, l *tasklog.Log) {
	log := n.log.With("task", t.ID, "job", t.Job, "attempt", t.Attempt)
	h, size, info, err := n.storeSealed(l.Seal)
	if err != nil {
		n.noteWriteError(err)
		log.Warn("task log: could not seal it; it stays on this node", "err", err)
		return
	}
	rep := api.Report{Kind: api.ReportLogSealed, Task: t.ID, Attempt: t.Attempt, Node: n.cfg.Name,
		Hash: string(h), Size: size, Bytes: info.Bytes, Lines: int(info.Lines)}
	ctx, cancel := context.WithTimeout(n.ctx, keepLogFor)
	defer cancel()
	var idx uint64
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		idx, err = n.applyReportAt(ctx, rep)
		if err == nil || errors.Is(err, errRefused) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	if err != nil {
		// The blob stays for collection (gcLoop): nothing refers to it.
		log.Info("task log: sealed but not recorded; it stays on this node", "err", err)
		return
	}
	// The raw copy goes once this replica shows the seal: a reader
	// relayed here by a replica that lags is served the sealed log.
	n.waitIndex(ctx, idx, keepLogFor)
	if err := n.logs.Retire(t.ID, t.Attempt, n.blobs.AddSpare); err != nil {
		log.Warn("task log: removing the raw copy", "err", err)
	}
	log.Debug("task log sealed", "hash", string(h), "bytes", info.Bytes, "lines", info.Lines, "blob_bytes", size)
}

// storeSealed stores what seal writes as a blob, on stable storage before
// it returns (the ledger will say this node holds it).
func (n *Node) storeSealed(seal func(io.Writer) (tasklog.SealInfo, error)) (blobs.Hash, int64, tasklog.SealInfo, error) {
	pr, pw := io.Pipe()
	sealed := make(chan tasklog.SealInfo, 1)
	go func() {
		info, err := seal(pw)
		sealed <- info
		pw.CloseWithError(err)
	}()
	h, size, err := n.blobs.Stage(pr, "")
	pr.CloseWithError(errors.New("node: the blob store stopped reading")) // a store that failed early must not leave seal blocked
	info := <-sealed
	if err == nil {
		err = n.blobs.Sync(h)
	}
	return h, size, info, err
}

// keepLogFor bounds how long a node tries to record a sealed log.
const keepLogFor = 30 * time.Second

// sealedLog is the sealed log of a task's attempt, if the ledger has one
// (none for a task it does not know: nil).
func sealedLog(t *raftfsm.Task, attempt int) (raftfsm.LogRef, bool) {
	if t == nil {
		return raftfsm.LogRef{}, false
	}
	for _, l := range t.Logs {
		if l.Attempt == attempt {
			return l, true
		}
	}
	return raftfsm.LogRef{}, false
}

// openSealed opens this node's copy of a sealed log's blob, fetched from
// a holder first when it has none. The caller closes the file.
func (n *Node) openSealed(ctx context.Context, ref raftfsm.LogRef) (*tasklog.Sealed, io.Closer, error) {
	h := blobs.Hash(ref.Hash)
	if err := n.ensureBlob(ctx, h); err != nil {
		return nil, nil, err
	}
	f, err := n.blobs.Open(h)
	if err != nil {
		return nil, nil, err
	}
	s, err := tasklog.OpenSealed(f, ref.Size)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return s, f, nil
}
