package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// While an attempt runs, its output streams in chunks (node/tasklog's
// Chunker: at 64 KiB or 1 s) to LogCopies-1 other live nodes, chosen per
// task by rendezvous hashing, which keep it in memory (a Replica each,
// liveLogs). A reader whose task's node is gone reads the output so far
// from such a copy; once the attempt is over, the node that ran it seals
// the log (logs_keep.go), and the copies are dropped. Should that node die
// first, a holder of a copy seals what it has (sealOrphanedLogs), so the
// output up to the last chunk outlives it.
//
// The runner keeps little of what it streams: its raw file (tasklog.Log)
// has every byte and every line's time, so a chunk a copy missed is cut
// again from it (Log.Rechunk, from the chunk's bounds), identical to the
// first. A holder that restarted (its copy lost) or lagged past what a
// shipper keeps in memory (maxPendingLog) is sent the output again from
// the chunk it wants, and streamed on: it loses its copy only when the
// runner dies too.

// liveLogs are the copies this node holds of attempts running elsewhere.
type liveLogs struct {
	mu    sync.Mutex
	m     map[string]*liveCopy // TASK/ATTEMPT
	bytes int64
	added chan struct{} // closed and replaced when a copy is made (lazily: nil until one waits)
}

type liveCopy struct {
	r         *tasklog.Replica
	grew      chan struct{} // closed and replaced when it grows, ends or is dropped; under liveLogs.mu
	from      string        // the node that runs the attempt
	settled   time.Time     // when this node first saw the attempt over (zero: not yet)
	goneSince time.Time     // since when gossip has not listed from (zero: it does)
}

// streamerHeader names the node that streams an attempt's output.
const streamerHeader = peer.StreamerHeader

// maxLiveLogBytes bounds the output a node holds for others.
const maxLiveLogBytes = 256 << 20

func liveKey(task string, attempt int) string { return task + "/" + strconv.Itoa(attempt) }

// logTargets are the live nodes that keep a copy of task's output while
// it runs here: the LogCopies-1 first by rendezvous hash of task and name.
func (n *Node) logTargets(task string) []string { return n.copyTargets(n.cfg.Name, task) }

// copyTargets are the nodes that keep a copy of task's output while it
// runs on node runner, as this node sees the mesh (the runner chooses by
// its own view: they agree but for a moment of membership change).
func (n *Node) copyTargets(runner, task string) []string {
	k := n.cfg.LogCopies - 1
	if k <= 0 {
		return nil
	}
	type scored struct {
		name  string
		score uint64
	}
	var cands []scored
	for _, m := range n.gossip.Members() {
		if m.Name == runner || m.Meta.Unhealthy != "" || m.Meta.Draining {
			continue
		}
		h := fnv.New64a()
		io.WriteString(h, task+"\x00"+m.Name)
		cands = append(cands, scored{m.Name, h.Sum64()})
	}
	slices.SortFunc(cands, func(a, b scored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []string
	for _, c := range cands[:min(k, len(cands))] {
		out = append(out, c.name)
	}
	return out
}

// streamLog ships an attempt's output to its targets as it is written; the
// returned func sends the final chunk and stops (waiting a little for it).
// When it returns no shipper reads the log's file any more: the caller
// may seal and retire it.
func (n *Node) streamLog(t *raftfsm.Task, l *tasklog.Log) (stop func()) {
	targets := n.logTargets(t.ID)
	if len(targets) == 0 {
		return func() {}
	}
	st := &logStream{l: l}
	ch := tasklog.NewChunker(t.ID, t.Attempt)
	for _, to := range targets {
		st.ships = append(st.ships, &shipper{n: n, st: st, to: to, task: t.ID, job: t.Job, attempt: t.Attempt, wake: make(chan struct{}, 1), done: make(chan struct{})})
	}
	// Cut and handed on under st.mu, so the shippers get the chunks in
	// the order of their Seq whether the tee or the ticker cut them.
	l.Tee(func(at time.Time, p []byte) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.publish(ch.Write(at, p)...)
	})
	ctx, cancel := context.WithCancel(n.ctx)
	for _, s := range st.ships {
		go s.run(ctx)
	}
	tick := time.NewTicker(tasklog.ChunkInterval / 4)
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				st.mu.Lock()
				if c, ok := ch.Tick(now); ok {
					st.publish(c)
				}
				st.mu.Unlock()
			}
		}
	}()
	return func() {
		l.Tee(nil)
		tick.Stop()
		st.mu.Lock()
		// A task over in under a second sends no chunk at all: its seal
		// covers it.
		if last := ch.Close(); len(st.bounds) > 0 {
			st.publish(last)
		}
		st.mu.Unlock()
		for _, s := range st.ships {
			s.finish()
		}
		flushed := time.NewTimer(2 * time.Second)
		defer flushed.Stop()
		for _, s := range st.ships {
			select {
			case <-s.done:
			case <-flushed.C:
			}
		}
		cancel()
		for _, s := range st.ships {
			<-s.done // none reads the file once the caller retires it
		}
		<-ticked
	}
}

// logStream is one attempt's output on its way to its copies: where every
// chunk cut so far lies (a few dozen bytes each), so that a shipper can
// cut any of them again from the log's file rather than keep it.
type logStream struct {
	l      *tasklog.Log
	ships  []*shipper
	mu     sync.Mutex
	bounds []tasklog.ChunkBounds // by Seq
}

// publish records chunks just cut and hands them to every shipper. Under
// st.mu.
func (st *logStream) publish(cs ...tasklog.Chunk) {
	if len(cs) == 0 {
		return
	}
	for i := range cs {
		st.bounds = append(st.bounds, cs[i].Bounds())
	}
	for _, s := range st.ships {
		s.add(cs)
	}
}

// rechunk cuts chunks from..upto-1 again from the file, up to about
// maxLogPost bytes of them (one at least).
func (st *logStream) rechunk(from, upto uint64) ([]tasklog.Chunk, error) {
	st.mu.Lock()
	upto = min(upto, uint64(len(st.bounds)))
	var bs []tasklog.ChunkBounds
	var size int64
	for seq := from; seq < upto && size < maxLogPost; seq++ {
		b := st.bounds[seq]
		bs = append(bs, b)
		size += b.End - b.Offset
	}
	st.mu.Unlock()
	out := make([]tasklog.Chunk, 0, len(bs))
	for _, b := range bs { // outside st.mu: Rechunk waits for a write in progress, whose tee takes st.mu
		c, err := st.l.Rechunk(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// shipper sends one target its chunks in order, resending from where the
// target says it is. It keeps the latest chunks in memory, at most
// maxPendingLog bytes of them; a target that wants earlier ones (it lags,
// or it restarted and lost its copy) gets them cut again from the log's
// file, maxLogPost bytes a request, until it is back among the kept ones.
// A 409 or an answer that does not move on waits a backoff, as a failure
// does, so a target that misbehaves is never hammered. It gives up (the
// seal still covers the log) only when the target refuses for good or
// the file cannot be read.
type shipper struct {
	n       *Node
	st      *logStream
	to      string
	task    string
	job     string
	attempt int
	mu      sync.Mutex
	pending []tasklog.Chunk // the latest chunks cut, in order, up to the last
	bytes   int64           // their memory (pendingSize)
	cut     uint64          // chunks handed to it: the Seq after the last
	ended   bool
	gone    bool // run returned: it keeps nothing more
	wake    chan struct{}
	done    chan struct{} // closed when run returns
}

const (
	// maxPendingLog bounds what a shipper keeps in memory for a target
	// that lags; what it drops is cut again from the file when wanted.
	maxPendingLog = 8 << 20
	// maxLogPost is about the most stream bytes a request carries.
	maxLogPost = 1 << 20
)

// pendingSize is about the memory a kept chunk takes: its bytes and its
// records (48 bytes each, a time and a slice: a chunk of one-byte lines
// takes 49 bytes a byte).
func pendingSize(c *tasklog.Chunk) int64 { return c.Len() + 48*int64(len(c.Records)) }

// add takes chunks just cut, dropping the oldest kept beyond the bound.
// Under the stream's lock (and maybe the log's write lock): it must not
// block.
func (s *shipper) add(cs []tasklog.Chunk) {
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	for _, c := range cs {
		s.pending = append(s.pending, c)
		s.bytes += pendingSize(&c)
		s.cut = c.Seq + 1
	}
	for s.bytes > maxPendingLog && len(s.pending) > 0 {
		s.bytes -= pendingSize(&s.pending[0])
		s.pending[0] = tasklog.Chunk{}
		s.pending = s.pending[1:]
	}
	s.mu.Unlock()
	s.poke()
}

func (s *shipper) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *shipper) finish() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
}

// batch drops the kept chunks before next (the target has them) and
// returns the kept ones from next on (up to maxLogPost bytes), or none
// when next is not among them; first is the Seq of the oldest kept, cut
// the Seq after the last.
func (s *shipper) batch(next uint64) (batch []tasklog.Chunk, first, cut uint64, ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for k < len(s.pending) && s.pending[k].Seq < next {
		s.bytes -= pendingSize(&s.pending[k])
		s.pending[k] = tasklog.Chunk{}
		k++
	}
	s.pending = s.pending[k:]
	first, cut, ended = s.cut-uint64(len(s.pending)), s.cut, s.ended
	if next < first {
		return nil, first, cut, ended
	}
	var size int64
	for _, c := range s.pending {
		if len(batch) > 0 && size+c.Len() > maxLogPost {
			break
		}
		batch = append(batch, c)
		size += c.Len()
	}
	return batch, first, cut, ended
}

func (s *shipper) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.gone, s.pending, s.bytes = true, nil, 0
		s.mu.Unlock()
		close(s.done)
	}()
	log := s.n.log.With("task", s.task, "job", s.job, "attempt", s.attempt, "copy_holder", s.to) // the logger names this node already
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		return true
	}
	var next uint64 // the Seq the target wants
	behind := false // it wants chunks no longer kept
	for {
		batch, first, cut, ended := s.batch(next)
		switch {
		case next < first && !behind:
			log.Info("task log: a copy is behind what this node keeps of the output; it is caught up from the file", "next", next, "kept_from", first)
		case next >= first && behind:
			log.Debug("task log: a copy caught up", "next", next)
		}
		behind = next < first
		switch {
		case next >= cut && ended:
			return
		case next >= cut:
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		case len(batch) == 0:
			var err error
			if batch, err = s.st.rechunk(next, first); err != nil {
				log.Warn("task log: a copy cannot be caught up from the file; not streamed there any more", "err", err)
				return
			}
		}
		from := next
		got, gap, err := s.post(ctx, batch)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			var ae *peer.AnswerError
			if errors.As(err, &ae) && ae.Status < 500 {
				log.Info("task log: a copy was refused; not streamed there any more", "err", err)
				return
			}
			if !wait() {
				return
			}
		case gap || got <= from:
			// It wants an earlier chunk (it restarted and lost its copy,
			// or lags) or did not move on: resent from there, after a
			// pause, so a target that keeps answering so is not hammered.
			next = got
			if !wait() {
				return
			}
		default:
			next, backoff = got, minBackoff
		}
	}
}

// post sends chunks back to back; the target answers the next Seq it
// wants, with 409 (gap) when a chunk came before one it misses.
func (s *shipper) post(ctx context.Context, batch []tasklog.Chunk) (next uint64, gap bool, err error) {
	base, ok := s.n.memberURL(s.to)
	if !ok {
		return 0, false, fmt.Errorf("node: %s is not reachable", s.to)
	}
	var body []byte
	for i := range batch {
		if body, err = batch[i].AppendBinary(body); err != nil {
			return 0, false, err
		}
	}
	next, gap, err = s.n.peers.PostLogChunks(ctx, base, s.task, s.attempt, body)
	if err != nil {
		return 0, false, fmt.Errorf("node: log chunks to %s: %w", s.to, err)
	}
	return next, gap, nil
}

// handleLogChunks applies chunks of an attempt running on the sender.
func (n *Node) takeChunks(w http.ResponseWriter, task string, attempt int, from string, body []byte) {
	k := liveKey(task, attempt)
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	if n.live.m == nil {
		n.live.m = map[string]*liveCopy{}
	}
	c := n.live.m[k]
	if c == nil {
		if n.live.bytes+int64(len(body)) > maxLiveLogBytes {
			n.metrics.LogChunksAnswered("refused")
			writeError(w, http.StatusInsufficientStorage, api.CodeNoSpace, fmt.Errorf("%s holds %s of other nodes' running logs already", n.cfg.Name, api.ByteSize(n.live.bytes)))
			return
		}
		c = &liveCopy{r: tasklog.NewReplica(task, attempt), from: from, grew: make(chan struct{})}
		n.live.m[k] = c
		if n.live.added != nil {
			close(n.live.added)
			n.live.added = nil
		}
	}
	before, ended := c.r.Len(), c.r.Done()
	defer func() { // under n.live.mu (deferred after it)
		if c.r.Len() != before || c.r.Done() != ended {
			close(c.grew)
			c.grew = make(chan struct{})
		}
	}()
	for len(body) > 0 {
		ch, used, err := tasklog.DecodeChunk(body)
		if err != nil {
			n.metrics.LogChunksAnswered("refused")
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		body = body[used:]
		before := c.r.Len()
		err = c.r.Apply(ch)
		n.live.bytes += c.r.Len() - before
		var gap *tasklog.GapError
		switch {
		case errors.As(err, &gap):
			n.metrics.LogChunksAnswered("gap")
			writeJSON(w, http.StatusConflict, map[string]any{"schema_version": api.SchemaVersion, "next": c.r.Next()})
			return
		case err != nil:
			n.metrics.LogChunksAnswered("refused")
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
	}
	n.metrics.LogChunksAnswered("ok")
	writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "next": c.r.Next()})
}

// LogCopy is the copy this node holds of another node's running attempt's
// output (what that node streamed so far), if any.
func (n *Node) LogCopy(task string, attempt int) ([]byte, bool) {
	b, _, ok := n.liveLog(task, attempt)
	return b, ok
}

func (n *Node) liveLog(task string, attempt int) (b []byte, done, ok bool) {
	n.live.mu.Lock()
	c := n.live.m[liveKey(task, attempt)]
	n.live.mu.Unlock()
	if c == nil {
		return nil, false, false
	}
	return c.r.Bytes(), c.r.Done(), true
}

// sealOrphanedLogs (every node, on a current replica) settles the copies
// this node holds: a copy whose attempt its own node sealed, or whose task
// is gone, is dropped; one whose attempt is over without a seal is sealed
// here and recorded with this node as its holder, when it is whole (the
// stream's last chunk came) and its node is gone or silent keepLogFor past
// the end, or when its node has been gone --dead-server-after (the mesh's
// word for dead): then as far as it came. A node only cut off for a moment
// comes back and seals its own, whole log: a copy sealed first would
// stand in its way (the ledger keeps the first seal of an attempt).
func (n *Node) sealOrphanedLogs() {
	n.live.mu.Lock()
	keys := make([]string, 0, len(n.live.m))
	for k := range n.live.m {
		keys = append(keys, k)
	}
	n.live.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	live := memberMap(n.gossip.Members())
	now := time.Now()
	for _, k := range keys {
		n.live.mu.Lock()
		c := n.live.m[k]
		n.live.mu.Unlock()
		if c == nil {
			continue
		}
		task, att, _ := strings.Cut(k, "/")
		attempt, _ := strconv.Atoi(att)
		var t *raftfsm.Task
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			if x := s.Tasks[task]; x != nil {
				t = x.Clone()
			}
		})
		_, sealed := sealedLog(t, attempt)
		over := t != nil && (t.Attempt > attempt || t.State.Terminal())
		switch {
		case t == nil || sealed:
			n.dropLiveCopy(k)
			continue
		case !over:
			continue
		case c.settled.IsZero():
			c.settled = now
		}
		_, alive := live[c.from]
		switch {
		case alive:
			c.goneSince = time.Time{}
			if !c.r.Done() || now.Sub(c.settled) < keepLogFor+5*time.Second {
				continue // its node seals it
			}
		case c.goneSince.IsZero():
			c.goneSince = now
			fallthrough
		default:
			if !c.r.Done() && now.Sub(c.goneSince) < n.cfg.DeadServerAfter {
				continue // it may come back with the whole log
			}
		}
		if err := n.sealCopy(t, attempt, c); err != nil {
			n.log.Warn("task log: could not seal a copy whose node is gone", "task", task, "attempt", attempt, "err", err)
			continue
		}
		n.dropLiveCopy(k)
	}
}

func (n *Node) dropLiveCopy(k string) {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	if c := n.live.m[k]; c != nil {
		n.live.bytes -= c.r.Len()
		delete(n.live.m, k)
		close(c.grew) // its followers go on from the seal
	}
}

// sealCopy seals the output a copy holds (marked where it ends, when the
// stream did not reach its end), stores it and records it.
func (n *Node) sealCopy(t *raftfsm.Task, attempt int, c *liveCopy) error {
	var sealFrom tasklog.Source = c.r
	if !c.r.Done() {
		// The stream ended early: say so, on a line of its own (each
		// line of the output keeps its time).
		out := c.r.Bytes()
		w := &tasklog.Writer{}
		for i := range c.r.NumLines() {
			l := c.r.Line(i)
			w.Write(l.At, l.Data)
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			w.Write(time.Now(), []byte("\n"))
		}
		w.Write(time.Now(), []byte(fmt.Sprintf("[ourci] the log ends here: its node %s stopped streaming it (it left the mesh); this copy was kept by %s\n", c.from, n.cfg.Name)))
		sealFrom = w
	}
	h, size, info, err := n.storeSealed(func(w io.Writer) (tasklog.SealInfo, error) { return tasklog.Seal(w, sealFrom) })
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, keepLogFor)
	defer cancel()
	return n.applyReport(ctx, api.Report{Kind: api.ReportLogSealed, Task: t.ID, Attempt: attempt, Node: n.cfg.Name,
		Hash: string(h), Size: size, Bytes: info.Bytes, Lines: int(info.Lines)})
}

// liveLogLoop settles the copies this node holds (sealOrphanedLogs) on a
// current replica, a few seconds after the ledger changed.
func (n *Node) liveLogLoop() {
	select {
	case <-n.ctx.Done():
		return
	case <-n.ready:
	}
	for {
		_, ch := n.fsm.Watch()
		n.live.mu.Lock()
		held := len(n.live.m)
		n.live.mu.Unlock()
		if held > 0 && n.replicaCurrent() {
			n.sealOrphanedLogs()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		case <-time.After(5 * time.Second):
		}
		select { // coalesce bursts of ledger changes
		case <-n.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// logBytes is what this node keeps of task logs (metrics): raw files on
// its disk, sealed logs it holds, copies of others' running output.
func (n *Node) logBytes() (raw, sealed, copies int64) {
	raw = n.logs.DiskBytes()
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		seen := map[string]bool{}
		for _, j := range s.Jobs {
			for _, h := range j.LogRefs {
				if b := s.Blobs[h]; b != nil && !seen[h] {
					seen[h] = true
					if _, held := slices.BinarySearch(b.Holders, n.cfg.Name); held {
						sealed += b.Size
					}
				}
			}
		}
	})
	n.live.mu.Lock()
	copies = n.live.bytes
	n.live.mu.Unlock()
	return raw, sealed, copies
}
