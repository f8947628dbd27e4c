package node

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// keepLog seals an attempt's log once, when it ends. What it misses the
// sweep (logSweepLoop, every node, on a current replica) catches, from
// the raw files the node holds (tasklog.Store.List):
//
//   - an attempt over in the ledger, not sealed, not live and not the
//     runner's any more (a previous life's, handed back; one whose seal or
//     record failed: a full disk, the leader away past keepLogFor) is
//     sealed and recorded as keepLog does (sealLog); a failure is tried
//     again after a backoff (1 s doubling to 2 min), logged when it first
//     happens and whenever it changes, not at every try;
//   - an attempt sealed already (by a copy holder that sealed first, or
//     keepLog gave up before the raw file went) has its raw file retired,
//     once a live node holds the sealed blob (a copy holder that sealed
//     part of the log and died at once leaves the raw file the only copy);
//   - the raw files of a task the ledger no longer knows, or of a job past
//     its log retention, are removed, sealed or not; so is the empty
//     directory of a task that is over;
//
// and, for every job whose logs expired, the copies this node holds of
// their sealed blobs once the ledger forgot them: nothing of an expired
// job's logs stays on its disk.

// logSeals is what keepLog and the sweep share: the attempts being sealed
// now, and those whose seal or record failed.
type logSeals struct {
	mu     sync.Mutex
	busy   map[string]bool       // TASK/ATTEMPT being sealed
	failed map[string]*sealRetry // TASK/ATTEMPT whose seal or record failed
	swept  map[string]bool       // jobs whose expired logs' copies this node removed
	kept   int                   // failed entries holding a Log (bounded by maxKeptLogs)
	now    func() time.Time      // real time (backoff); time.Now if nil
}

// sealRetry is an attempt whose seal or record failed.
type sealRetry struct {
	log   *tasklog.Log // the finished log with its lines' times (nil: seal the file)
	blob  sealedBlob   // sealed but not recorded: record this one (zero: seal again)
	tries int
	next  time.Time // no try before (real time)
	said  string    // the failure last logged
}

const (
	sweepEvery      = 10 * time.Second // a pass at least this often
	sweepSettle     = 2 * time.Second  // and at most this often (the ledger changes every few ms under load)
	sweepBackoffMin = time.Second
	sweepBackoffMax = 2 * time.Minute
	sweepRecordFor  = 10 * time.Second // a sweep's try to record a seal
	maxKeptLogs     = 64               // failed logs whose line times are kept in memory
)

func (s *logSeals) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// claim marks an attempt as being sealed; false if it is already.
func (s *logSeals) claim(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[key] {
		return false
	}
	if s.busy == nil {
		s.busy = map[string]bool{}
	}
	s.busy[key] = true
	return true
}

func (s *logSeals) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, key)
}

// due returns the retry of an attempt if one may be tried now (nil and
// true when nothing failed before; false while it backs off).
func (s *logSeals) due(key string) (*sealRetry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.failed[key]
	if r == nil {
		return nil, true
	}
	return r, !s.clock().Before(r.next)
}

// fail records a failed try and returns whether it is worth a log line
// (the first failure, or another failure than the one logged last).
func (s *logSeals) fail(key string, l *tasklog.Log, blob sealedBlob, err error) (tries int, say bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[string]*sealRetry{}
	}
	r := s.failed[key]
	if r == nil {
		r = &sealRetry{}
		s.failed[key] = r
	}
	if l != nil && r.log == nil && s.kept < maxKeptLogs {
		r.log = l
		s.kept++
	}
	if r.log != nil && errors.Is(err, tasklog.ErrUnsealable) {
		// The Log says its file is not what was written (a write failed):
		// what the file holds is what a reader gets, so seal that.
		r.log = nil
		s.kept--
	}
	r.blob = blob
	r.tries++
	r.next = s.clock().Add(min(sweepBackoffMin<<min(r.tries-1, 20), sweepBackoffMax))
	what := failureKind(blob, err)
	say = what != r.said
	r.said = what
	return r.tries, say
}

// forget drops what is known of an attempt's failures and returns it (nil
// if none).
func (s *logSeals) forget(key string) *sealRetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.failed[key]
	if r != nil {
		if r.log != nil {
			s.kept--
		}
		delete(s.failed, key)
	}
	return r
}

// failureKind names a failure for "has it changed": the step and the
// error as an operator reads it (a temp file's name does not count).
func failureKind(blob sealedBlob, err error) string {
	step := "seal"
	if blob.hash != "" {
		step = "record"
	}
	return step + ": " + runner.ErrText(errors.Unwrap(err))
}

// sweepAction is what a pass does with one raw file.
type sweepAction int

const (
	sweepRetire sweepAction = iota // sealed (here or elsewhere): the raw file goes
	sweepRemove                    // its task left the ledger, or its job's log retention ran out
	sweepSeal                      // over, not sealed: seal and record it
)

type sweepItem struct {
	held   tasklog.Held
	action sweepAction
	job    string // "" if the ledger does not know the task
	why    string // for sweepRemove
	over   bool   // the task is over (or unknown): its directory may go with its last file
}

// logSweepLoop runs the sweep on a current replica: at every settled change
// of the ledger, and every sweepEvery.
func (n *Node) logSweepLoop() {
	select {
	case <-n.ctx.Done():
		return
	case <-n.ready:
	}
	for {
		_, ch := n.fsm.Watch()
		if n.replicaCurrent() {
			n.sweepLogs()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		case <-time.After(sweepEvery):
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(sweepSettle):
		}
	}
}

// sweepLogs is one pass of the sweep.
func (n *Node) sweepLogs() {
	held, empty, err := n.logs.List()
	if err != nil {
		n.log.Warn("task log sweep: listing the raw logs", "err", err)
	}
	now := n.cfg.Clock.Now()
	live := memberMap(n.gossip.Members())
	var items []sweepItem
	var drop []blobs.Hash
	var tidy []string // empty task directories no attempt will write to
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, task := range empty {
			if t := s.Tasks[task]; t == nil || t.State.Terminal() {
				tidy = append(tidy, task)
			}
		}
		for _, h := range held {
			it := sweepItem{held: h}
			t := s.Tasks[h.Task]
			var j *raftfsm.Job
			if t != nil {
				j, it.job = s.Jobs[t.Job], t.Job
			}
			it.over = t == nil || t.State.Terminal()
			ref, sealed := sealedLog(t, h.Attempt)
			switch {
			case t == nil || j == nil:
				it.action, it.why = sweepRemove, "its task left the ledger"
			case n.logsExpired(j, now):
				it.action, it.why = sweepRemove, "its job's log retention ran out"
			case sealed && !liveHolder(s.Blobs[ref.Hash], live):
				continue // its only copies are on nodes that are gone: this one stays readable
			case sealed:
				it.action = sweepRetire
			case t.Attempt > h.Attempt || t.Attempt == h.Attempt && t.State.Terminal():
				it.action = sweepSeal
			default:
				continue // not over yet: its runner (or a previous life's hand-back) comes first
			}
			items = append(items, it)
		}
		drop = n.expiredLogBlobs(s)
	})
	for _, task := range tidy {
		n.logs.RemoveDir(task)
	}
	for _, h := range drop {
		if !n.blobs.Has(h) {
			continue
		}
		if err := n.blobs.Delete(h); err != nil {
			n.log.Warn("task log sweep: removing an expired log's copy", "hash", string(h), "err", err)
			continue
		}
		n.log.Info("task log sweep: removed the copy of an expired log", "hash", string(h))
	}
	// Removals first: a record that fails for want of the leader ends the
	// pass.
	slices.SortStableFunc(items, func(a, b sweepItem) int { return int(a.action) - int(b.action) })
	for _, it := range items {
		if n.ctx.Err() != nil {
			return
		}
		if !n.sweepOne(it) {
			return // the leader is out of reach: the next pass tries again
		}
	}
}

// liveHolder reports whether a live member holds a copy of b.
func liveHolder(b *raftfsm.Blob, live map[string]gossip.Member) bool {
	if b == nil {
		return false
	}
	for _, h := range b.Holders {
		if _, ok := live[h]; ok {
			return true
		}
	}
	return false
}

// logsExpired reports whether a job's logs are past their retention: the
// ledger says so, or (a job whose logs were never sealed, which the
// ledger's retention never marks) it closed LogRetention ago.
func (n *Node) logsExpired(j *raftfsm.Job, now time.Time) bool {
	return j.LogsExpired || j.State == raftfsm.JobClosed && !j.ClosedAt.IsZero() && !now.Before(j.ClosedAt.Add(n.cfg.LogRetention))
}

// expiredLogBlobs returns the sealed logs of jobs whose logs expired that
// the ledger forgot (nothing refers to them any more): the copies to
// remove. Each job is looked at once per life of the node.
func (n *Node) expiredLogBlobs(s *raftfsm.State) []blobs.Hash {
	n.seals.mu.Lock()
	defer n.seals.mu.Unlock()
	if n.seals.swept == nil {
		n.seals.swept = map[string]bool{}
	}
	for id := range n.seals.swept {
		if _, ok := s.Jobs[id]; !ok {
			delete(n.seals.swept, id)
		}
	}
	var out []blobs.Hash
	for _, id := range s.JobOrder {
		j := s.Jobs[id]
		if j == nil || !j.LogsExpired || n.seals.swept[id] {
			continue
		}
		n.seals.swept[id] = true
		for _, tid := range j.Tasks {
			if t := s.Tasks[tid]; t != nil {
				for _, l := range t.Logs {
					if _, known := s.Blobs[l.Hash]; !known {
						out = append(out, blobs.Hash(l.Hash))
					}
				}
			}
		}
	}
	return out
}

// sweepOne acts on one raw file; false when a record failed for want of
// the leader (the pass stops there).
func (n *Node) sweepOne(it sweepItem) bool {
	h := it.held
	key := liveKey(h.Task, h.Attempt)
	if n.logs.Live(h.Task, h.Attempt) != nil || n.runner != nil && n.runner.Holds(h.Task, h.Attempt) {
		return true // the runner's: keepLog comes first
	}
	if !n.seals.claim(key) {
		return true // being sealed
	}
	defer n.seals.release(key)
	log := n.log.With("task", h.Task, "attempt", h.Attempt)
	if it.job != "" {
		log = log.With("job", it.job)
	}
	if it.action == sweepSeal {
		return n.sweepSeal(log, it, key)
	}
	n.dropRetry(key)
	if it.action == sweepRetire {
		if err := n.logs.Retire(h.Task, h.Attempt, n.blobs.AddSpare); err != nil {
			log.Warn("task log sweep: removing the raw copy of a sealed log", "err", err)
		} else {
			log.Info("task log sweep: removed the raw copy of a log sealed already")
		}
	} else {
		if err := n.logs.Remove(h.Task, h.Attempt); err != nil {
			log.Warn("task log sweep: removing a raw log", "why", it.why, "err", err)
		} else {
			log.Info("task log sweep: removed a raw log", "why", it.why, "bytes", h.Size)
		}
	}
	if it.over {
		n.logs.RemoveDir(h.Task)
	}
	return true
}

// sweepSeal seals and records an attempt's log the sweep found unsealed,
// unless a failure before still backs off; false when the record failed
// for want of the leader.
func (n *Node) sweepSeal(log *slog.Logger, it sweepItem, key string) bool {
	h := it.held
	r, due := n.seals.due(key)
	if !due {
		return true
	}
	var l *tasklog.Log
	var prev sealedBlob
	if r != nil {
		l, prev = r.log, r.blob
	}
	seal := func(w io.Writer) (tasklog.SealInfo, error) { return n.logs.SealFile(h.Task, h.Attempt, w) }
	if l != nil {
		seal = l.Seal
	}
	sb, err := n.sealLog(h.Task, h.Attempt, seal, prev, sweepRecordFor)
	if err != nil {
		n.noteSealFailure(log, key, l, sb, err)
		return sb.hash == "" || errors.Is(err, errRefused)
	}
	n.seals.forget(key)
	tries := 0
	if r != nil {
		tries = r.tries
	}
	log.Info("task log sweep: sealed and recorded a log left unsealed", "hash", string(sb.hash), "bytes", sb.info.Bytes, "failed_tries", tries)
	return true
}

// dropRetry forgets an attempt's failures, and removes the blob it sealed
// and could not record if the ledger does not know it (else collection
// would, a grace period later: its bytes are the log's).
func (n *Node) dropRetry(key string) {
	r := n.seals.forget(key)
	if r == nil || r.blob.hash == "" {
		return
	}
	known := false
	n.fsm.Read(func(s *raftfsm.State, _ uint64) { _, known = s.Blobs[string(r.blob.hash)] })
	if !known {
		n.blobs.Delete(r.blob.hash)
	}
}

// noteSealFailure records a failed seal or record for a later try and logs
// it when it is new.
func (n *Node) noteSealFailure(log *slog.Logger, key string, l *tasklog.Log, sb sealedBlob, err error) {
	if sb.hash == "" {
		n.noteWriteError(err)
	}
	tries, say := n.seals.fail(key, l, sb, err)
	if !say {
		return
	}
	switch {
	case sb.hash == "":
		log.Warn("task log: could not seal it; it stays on this node, read where it ran, and is tried again", "err", err, "tries", tries)
	default:
		log.Info("task log: sealed but not recorded; it stays on this node, read where it ran, and is tried again", "err", err, "hash", string(sb.hash), "tries", tries)
	}
}
