package node

import (
	"context"
	"errors"
	"fmt"
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
// What keepLog could not seal or record (the node stopped first, a full
// disk, the leader away), the sweep seals later (logs_sweep.go).

// keepLog seals a finished attempt's log, stores it as a blob and records
// it. It gives up after a bounded time (the leader away, a voter on an
// older binary): the raw log stays, read where it ran, and the sweep
// (logs_sweep.go) tries again later.
func (n *Node) keepLog(t *raftfsm.Task, l *tasklog.Log) {
	log := n.log.With("task", t.ID, "job", t.Job, "attempt", t.Attempt)
	key := liveKey(t.ID, t.Attempt)
	if !n.seals.claim(key) {
		log.Debug("task log: being sealed already")
		return
	}
	defer n.seals.release(key)
	sb, err := n.sealLog(t.ID, t.Attempt, l.Seal, sealedBlob{}, keepLogFor)
	if err != nil {
		// A blob sealed but not recorded stays for the sweep's next try
		// (or collection, gcLoop: nothing refers to it).
		n.noteSealFailure(log, key, l, sb, err)
		return
	}
	n.seals.forget(key)
	log.Debug("task log sealed", "hash", string(sb.hash), "bytes", sb.info.Bytes, "lines", sb.info.Lines, "blob_bytes", sb.size)
}

// sealedBlob is a sealed log stored as a blob on this node.
type sealedBlob struct {
	hash blobs.Hash
	size int64
	info tasklog.SealInfo
}

// sealLog is what keepLog and the sweep share: it seals an attempt's log
// (what seal writes) into a blob on stable storage, records it against
// (task, attempt) with this node as its holder, trying for up to
// recordFor, and once this replica shows the seal retires the raw file.
// A blob sealed before and not recorded (prev) is recorded as it is while
// this node still has it. On an error, the blob sealed is returned with it
// (zero when the seal itself failed): the next try records that one.
func (n *Node) sealLog(task string, attempt int, seal func(io.Writer) (tasklog.SealInfo, error), prev sealedBlob, recordFor time.Duration) (sealedBlob, error) {
	sb := prev
	if sb.hash == "" || !n.blobs.Has(sb.hash) {
		h, size, info, err := n.storeSealed(seal)
		if err != nil {
			return sealedBlob{}, fmt.Errorf("node: task log: seal: %w", err)
		}
		sb = sealedBlob{hash: h, size: size, info: info}
	}
	rep := api.Report{Kind: api.ReportLogSealed, Task: task, Attempt: attempt, Node: n.cfg.Name,
		Hash: string(sb.hash), Size: sb.size, Bytes: sb.info.Bytes, Lines: int(sb.info.Lines)}
	ctx, cancel := context.WithTimeout(n.ctx, recordFor)
	defer cancel()
	var idx uint64
	var err error
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
		return sb, fmt.Errorf("node: task log: record the seal: %w", err)
	}
	// The raw copy goes once this replica shows the seal: a reader
	// relayed here by a replica that lags is served the sealed log.
	n.waitIndex(ctx, idx, recordFor)
	if err := n.logs.Retire(task, attempt, n.blobs.AddSpare); err != nil {
		n.log.Warn("task log: removing the raw copy", "task", task, "attempt", attempt, "err", err)
	}
	return sb, nil
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
	if err := n.fetcher.Ensure(ctx, h); err != nil {
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
