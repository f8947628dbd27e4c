package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// A read of an attempt's log is served from the nearest source that has
// it, and a follow goes on from source to source where the last one
// stopped (a log only ever grows, so every source agrees on what came
// first): its sealed log (any holder of the blob), this node's own file
// (it ran the attempt), this node's copy of it, a copy on the node that
// keeps one (copyTargets, the runner's choice), and only when no node
// holds a copy (--log-copies 1, a mesh of one, the first second of an
// attempt that prints little) the node that runs it. A follow ends when a
// source had the whole log (the sealed log, the runner's file once the
// attempt ended, a copy whose last chunk came).
//
// The position in the stream is a byte offset, or with ?timestamps=1 a
// line number (stamped output has whole lines only, but for an unended
// last one at the end); a relay passes it on as ?from=.

// wholeHeader says a log stream ended with the attempt's whole log: a
// header when the source is known whole at the start, else a trailer.
const wholeHeader = peer.WholeHeader

// copyHeader names the node whose copy of a running attempt's output a
// stream comes from.
const copyHeader = "X-Ourci-Log-Copy"

// logCursor is where a reader is in an attempt's log: what it was sent.
type logCursor struct {
	w       http.ResponseWriter
	stamped bool
	pos     int64 // bytes sent, or lines when stamped
	started bool
}

// start writes the headers before the first byte: copyOf names a copy's
// holder, whole says the source holds the whole log (else it is said in
// a trailer, if it turns out so).
func (c *logCursor) start(copyOf string, whole bool) {
	if c.started {
		return
	}
	c.started = true
	h := c.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if copyOf != "" {
		h.Set(copyHeader, copyOf)
	}
	if whole {
		h.Set(wholeHeader, "true")
	} else {
		h.Set("Trailer", wholeHeader)
	}
	c.w.WriteHeader(http.StatusOK)
}

// ended records that the reader has had the whole log.
func (c *logCursor) ended() {
	if c.started && c.w.Header().Get(wholeHeader) == "" {
		c.w.Header().Set(wholeHeader, "true")
	}
}

func (c *logCursor) flush() {
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Write passes on a relayed stream, counting where it is.
func (c *logCursor) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	if c.stamped {
		c.pos += int64(bytes.Count(p[:k], []byte{'\n'}))
	} else {
		c.pos += int64(k)
	}
	return k, err
}

// stream writes what of a stream's bytes so far is past the position.
func (c *logCursor) stream(b []byte) error {
	if c.pos >= int64(len(b)) {
		return nil
	}
	_, err := c.Write(b[c.pos:])
	return err
}

// lines writes src's lines past the position, stamped (the unended last
// one only when final).
func (c *logCursor) lines(src tasklog.Source, final bool) error {
	next, err := tasklog.WriteStamped(c.w, src, int(c.pos), final)
	c.pos = int64(max(next, int(c.pos)))
	return err
}

// skipWriter drops what a source writes before the cursor's position.
type skipWriter struct {
	c    *logCursor
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	k := len(p)
	if s.skip >= int64(k) {
		s.skip -= int64(k)
		return k, nil
	}
	p, s.skip = p[s.skip:], 0
	if _, err := s.c.Write(p); err != nil {
		return 0, err
	}
	return k, nil
}

// serveLog answers a read of task id's log, whose reader handleLog has
// checked: attempt want (0: the current one), from position from.
func (n *Node) serveLog(w http.ResponseWriter, r *http.Request, p Principal, id string, want int, follow, stamped bool, from int64) {
	ctx := r.Context()
	cur := &logCursor{w: w, stamped: stamped, pos: from}
	attempt := want
	// A follower may not have applied a task spawned a moment ago
	// through another node: a follow waits a little for it.
	unknownUntil := time.Now().Add(5 * time.Second)
	var lostSince time.Time // a follow of an attempt that no source holds
	for {
		_, changed := n.fsm.Watch()
		t := n.taskCopy(id)
		switch {
		case t == nil && follow && !cur.started && time.Now().Before(unknownUntil):
			if !waitChange(ctx, changed, time.Until(unknownUntil)) {
				return
			}
			continue
		case t == nil && !cur.started:
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no task %s", id))
			return
		case t == nil:
			return // the job expired as it was read
		case !cur.started && !httpapi.MayRead(n.fsm, p, t.Job):
			writeError(w, http.StatusForbidden, api.CodeForbidden, httpapi.OtherJobError(p, "the log of task "+id+", which is in another job"))
			return
		}
		if attempt == 0 && t.Attempt > 0 && t.Node != "" {
			attempt = t.Attempt // fixed from here: a follow reads one attempt
		}
		if attempt == 0 {
			// Not assigned yet: nothing ran, an empty log.
			if !follow || t.State.Terminal() {
				cur.start("", true)
				return
			}
			if !waitChange(ctx, changed, 0) {
				return
			}
			continue
		}
		whole, served := n.serveLogOnce(ctx, cur, r, t, attempt, follow)
		switch {
		case whole:
			cur.ended()
			return
		case ctx.Err() != nil:
			return
		case served && !follow:
			if stamped {
				return
			}
			// A copy that may end early: say so, if its node is gone.
			if _, up := n.memberURL(t.Node); !up || want > 0 {
				if b := cur.pos; b > 0 {
					w.Write([]byte("\n"))
				}
				fmt.Fprintf(w, "[ourci] this is a copy of what the task printed while it ran, kept by another node: the node that ran it is not reachable now, and the copy may end before the task's output did\n")
			}
			return
		case served:
			lostSince = time.Time{}
			continue // a source ended early: the next goes on from there
		}
		// No source has it now.
		running := !(t.State.Terminal() || t.Attempt > attempt)
		if !follow {
			if !cur.started && running && t.Node == n.cfg.Name {
				cur.start("", false) // assigned here, not started yet
				return
			}
			if !cur.started {
				writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s attempt %d ran on %s, which is not reachable now, and no other node holds a copy of its log yet", id, attempt, t.Node))
			}
			return
		}
		if lostSince.IsZero() {
			lostSince = time.Now()
		}
		if !running && time.Since(lostSince) > keepLogFor {
			if !cur.started {
				writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s attempt %d ran on %s, which is not reachable now, and no other node holds a copy of its log", id, attempt, t.Node))
			}
			return
		}
		// A copy or a holder may turn up without a ledger change: look
		// again in a second at the latest.
		if !waitChange(ctx, changed, time.Second) {
			return
		}
	}
}

// waitChange waits for changed, at most d (0: no bound); false when ctx
// is done.
func waitChange(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-timeout:
	}
	return true
}

func (n *Node) taskCopy(id string) *raftfsm.Task {
	var t *raftfsm.Task
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		if x := s.Tasks[id]; x != nil {
			t = x.Clone()
		}
	})
	return t
}

// serveLogOnce writes the log from the first source that has it, from
// the cursor on: whether the reader now has it whole, and whether any
// source served it.
func (n *Node) serveLogOnce(ctx context.Context, cur *logCursor, r *http.Request, t *raftfsm.Task, attempt int, follow bool) (whole, served bool) {
	if ref, ok := sealedLog(t, attempt); ok && n.writeSealed(ctx, cur, r, t, ref) {
		return true, true
	}
	if l := n.logs.Live(t.ID, attempt); l != nil || n.logs.Has(t.ID, attempt) {
		if whole, ok := n.writeOwn(ctx, cur, t.ID, attempt, l, follow); ok {
			return whole, true
		}
	}
	if whole, ok := n.writeCopy(ctx, cur, t.ID, attempt, follow); ok {
		return whole, true
	}
	// Another node's: the copies first, the runner only when none has one.
	q := url.Values{"from": {strconv.FormatInt(cur.pos, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	if cur.stamped {
		q.Set("timestamps", "1")
	}
	path := "/v1/internal/logs/" + t.ID + "/" + strconv.Itoa(attempt) + "?" + q.Encode()
	holders := n.copyTargets(t.Node, t.ID)
	if !follow || attempt != t.Attempt {
		// A snapshot, or an earlier attempt: any node may hold a copy.
		for _, m := range n.gossip.Members() {
			if !slices.Contains(holders, m.Name) {
				holders = append(holders, m.Name)
			}
		}
	}
	for _, h := range holders {
		if h == n.cfg.Name || h == t.Node && attempt == t.Attempt {
			continue
		}
		base, up := n.memberURL(h)
		if !up {
			continue
		}
		if whole, ok := n.relayLog(ctx, cur, base+path, h); ok {
			return whole, true
		}
	}
	if t.Node == n.cfg.Name || attempt != t.Attempt {
		return false, false
	}
	base, up := n.memberURL(t.Node)
	if !up {
		return false, false
	}
	q.Set("attempt", strconv.Itoa(attempt))
	return n.relayLog(ctx, cur, base+"/v1/tasks/"+t.ID+"/log?"+q.Encode(), "")
}

// writeSealed writes a sealed log from the cursor on; false, having
// written nothing, when no copy of it can be had. From the start, raw, it
// answers Range requests (a big log read in pieces, a download resumed).
func (n *Node) writeSealed(ctx context.Context, cur *logCursor, r *http.Request, t *raftfsm.Task, ref raftfsm.LogRef) bool {
	s, f, err := n.openSealed(ctx, ref)
	if err != nil {
		n.log.Info("task log: no copy of its sealed log to be had", "task", t.ID, "attempt", ref.Attempt, "err", err)
		return false
	}
	defer f.Close()
	if !cur.started {
		cur.w.Header().Set("X-Ourci-Log-Lines", strconv.Itoa(ref.Lines))
	}
	if !cur.started && !cur.stamped && cur.pos == 0 {
		cur.started = true
		cur.w.Header().Set(wholeHeader, "true")
		http.ServeContent(cur.w, r, "", time.Time{}, io.NewSectionReader(s, 0, s.Size()))
		return true
	}
	cur.start("", true)
	if !cur.stamped {
		if cur.pos < s.Size() {
			if _, err := io.Copy(cur, io.NewSectionReader(s, cur.pos, s.Size()-cur.pos)); err != nil {
				n.log.Debug("task log: a reader went away", "task", t.ID, "attempt", ref.Attempt, "err", err)
			}
		}
		return true
	}
	for cur.pos < s.Totals().Lines {
		lines, err := s.Lines(cur.pos, tasklog.MaxLines)
		if err != nil || len(lines) == 0 {
			n.log.Warn("task log: reading a sealed log", "task", t.ID, "attempt", ref.Attempt, "err", err)
			return true
		}
		var b []byte
		for _, l := range lines {
			b = tasklog.AppendStamped(b, l)
		}
		if _, err := cur.w.Write(b); err != nil {
			return true
		}
		cur.pos += int64(len(lines))
	}
	return true
}

// writeOwn writes this node's own file of the attempt's log (l: while it
// runs here). A stamped read of a file no longer written is left to the
// seal that follows at once (the lines' times are with the writer).
func (n *Node) writeOwn(ctx context.Context, cur *logCursor, task string, attempt int, l *tasklog.Log, follow bool) (whole, ok bool) {
	if !cur.stamped {
		cur.start("", false)
		err := n.logs.Stream(ctx, &skipWriter{c: cur, skip: cur.pos}, cur.flush, task, attempt, follow)
		if err != nil {
			return false, err != tasklog.ErrNoLog
		}
		return follow || l == nil, true
	}
	if l == nil {
		return false, false
	}
	for {
		changed, done := l.Changed()
		cur.start("", false)
		next, err := l.WriteStamped(cur.w, int(cur.pos), done || !follow)
		cur.pos = int64(max(next, int(cur.pos)))
		cur.flush()
		if whole, again := followOn(ctx, err, done, follow, changed); !again {
			return whole, true
		}
	}
}

// followOn decides, after a source wrote what it had, whether a read
// goes on with it: not after an error, its end or a snapshot; else once
// it changed (again), unless ctx ended first. whole: the reader has the
// whole log.
func followOn(ctx context.Context, err error, done, follow bool, changed <-chan struct{}) (whole, again bool) {
	switch {
	case err != nil:
		return false, false
	case done:
		return true, false
	case !follow:
		return false, false
	}
	select {
	case <-ctx.Done():
		return false, false
	case <-changed:
		return false, true
	}
}

// writeCopy writes this node's copy of another node's running attempt
// from the cursor on, following it as it grows: whole when its last
// chunk came; not ok when there is none. A follow ends early when the
// copy is dropped (its attempt sealed: the reader goes on from the seal).
func (n *Node) writeCopy(ctx context.Context, cur *logCursor, task string, attempt int, follow bool) (whole, ok bool) {
	k := liveKey(task, attempt)
	for {
		n.live.mu.Lock()
		c := n.live.m[k]
		var grew <-chan struct{}
		if c != nil {
			grew = c.grew
		}
		n.live.mu.Unlock()
		if c == nil {
			return false, ok
		}
		done := c.r.Done() // before the bytes: none is missed
		ok = true
		cur.start(n.cfg.Name, done)
		var err error
		if cur.stamped {
			err = cur.lines(c.r, done || !follow)
		} else {
			err = cur.stream(c.r.Bytes())
		}
		cur.flush()
		if whole, again := followOn(ctx, err, done, follow, grew); !again {
			return whole, true
		}
	}
}

// relayLog passes on a log stream from another node (a copy's holder,
// or the runner), from the cursor on: whether it ended with the whole
// log; not ok when that node answered nothing to pass on.
func (n *Node) relayLog(ctx context.Context, cur *logCursor, u, copyOf string) (whole, ok bool) {
	resp, err := n.peers.OpenLog(ctx, u)
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	cur.start(copyOf, resp.Header.Get(wholeHeader) == "true")
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if _, werr := cur.Write(buf[:k]); werr != nil {
				return false, true
			}
			cur.flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, true
		}
	}
	return resp.Header.Get(wholeHeader) == "true" || resp.Trailer.Get(wholeHeader) == "true", true
}

// handleLiveLog serves this node's copy of another node's running (or
// orphaned) attempt's output, from ?from= on (bytes, or lines with
// ?timestamps=1); ?follow=1 follows it as it grows, and waits a moment
// for a copy this node should keep but has not been sent yet.
// X-Ourci-Log-Whole says (as a header or a trailer) whether the stream's
// last chunk came.
func (n *Node) serveCopy(w http.ResponseWriter, r *http.Request, task string, attempt int, follow, stamped bool, from int64) {
	if follow {
		n.awaitCopy(r.Context(), task, attempt)
	}
	cur := &logCursor{w: w, stamped: stamped, pos: from}
	if whole, ok := n.writeCopy(r.Context(), cur, task, attempt, follow); !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("%s holds no copy of that attempt's log", n.cfg.Name))
	} else if whole {
		cur.ended()
	}
}

// awaitCopy waits, for a few chunk intervals at most, for the copy of a
// running attempt that this node is one to keep (its first chunk comes
// after a second, or 64 KiB).
func (n *Node) awaitCopy(ctx context.Context, task string, attempt int) {
	deadline := time.NewTimer(3 * tasklog.ChunkInterval)
	defer deadline.Stop()
	for {
		_, changed := n.fsm.Watch()
		t := n.taskCopy(task)
		if t == nil || t.Attempt != attempt || t.State.Terminal() || !slices.Contains(n.copyTargets(t.Node, task), n.cfg.Name) {
			return
		}
		n.live.mu.Lock()
		_, held := n.live.m[liveKey(task, attempt)]
		if n.live.added == nil {
			n.live.added = make(chan struct{})
		}
		added := n.live.added
		n.live.mu.Unlock()
		if held {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-added:
		case <-changed:
		}
	}
}
