package leader

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// Retention applies the retention policy: a closed job's blob names and
// references expire BlobRetention after it closed, its tasks' sealed logs
// LogRetention after it closed, and the job leaves the ledger (with its
// tasks) JobHistory after it closed; a blob no job refers
// to is forgotten BlobRetention after it was made, and its holders delete
// their copies. A sealed log's blob is forgotten with its job's logs (in
// the same command, which expires the logs first), unless a job refers to
// it as an artifact: nothing of an expired log is kept anywhere. One
// Expire command carries a pass's decisions, stamped with the time they
// were made at.
type Retention struct {
	Ledger        Ledger
	Writer        Writer
	Clock         clock.Clock
	Log           *slog.Logger
	BlobRetention time.Duration
	LogRetention  time.Duration
	JobHistory    time.Duration
	// Settle is how long after a ledger change it looks again (a pass
	// walks the whole ledger; under load it changes every few ms).
	Settle time.Duration
}

func (Retention) Name() string { return "retention" }

func (r Retention) Run(ctx context.Context) {
	for {
		_, ch := r.Ledger.Watch()
		now := r.Clock.Now()
		ex, next := r.due(now)
		if len(ex.Jobs) > 0 || len(ex.Blobs) > 0 || len(ex.Forget) > 0 || len(ex.Logs) > 0 {
			if _, err := r.Writer.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdExpire, Expire: ex}); err != nil && ctx.Err() == nil {
				r.Log.Warn("leader: retention", "err", err)
				next = now.Add(time.Second)
			} else {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if !sleep(ctx, r.Settle) {
				return
			}
		case <-r.Clock.After(next.Sub(now)):
		}
	}
}

// due returns what expires at now and when to look next.
func (r Retention) due(now time.Time) (*raftfsm.Expire, time.Time) {
	next := now.Add(time.Hour)
	ex := &raftfsm.Expire{}
	r.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		for _, id := range s.JobOrder {
			j := s.Jobs[id]
			if j.State != raftfsm.JobClosed {
				continue
			}
			if len(j.LogRefs) > 0 && !j.LogsExpired { // (only a schema-2 ledger has sealed logs)
				if due := j.ClosedAt.Add(r.LogRetention); !now.Before(due) {
					ex.Logs = append(ex.Logs, id)
					// Applied after the logs expired, as any blob: it goes
					// only if no job refers to it any more.
					ex.Blobs = append(ex.Blobs, j.LogRefs...)
				} else if due.Before(next) {
					next = due
				}
			}
			if j.Expired {
				if due := j.ClosedAt.Add(r.JobHistory); !now.Before(due) {
					ex.Forget = append(ex.Forget, id)
				} else if due.Before(next) {
					next = due
				}
				continue
			}
			if due := j.ClosedAt.Add(r.BlobRetention); !now.Before(due) {
				ex.Jobs = append(ex.Jobs, id)
			} else if due.Before(next) {
				next = due
			}
		}
		for h, b := range s.Blobs {
			if len(b.Jobs) > 0 {
				continue
			}
			if due := b.CreatedAt.Add(r.BlobRetention); !now.Before(due) {
				ex.Blobs = append(ex.Blobs, h)
			} else if due.Before(next) {
				next = due
			}
		}
	})
	slices.Sort(ex.Blobs)
	ex.Blobs = slices.Compact(ex.Blobs)
	return ex, next
}
