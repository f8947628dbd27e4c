package node

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// handleLog streams an attempt's output (?attempt=N, default the current
// one). The node that ran the attempt holds the log; any other node relays
// the request there. With ?follow=1 the stream lasts until the attempt ends.
func (n *Node) handleLog(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	follow := r.URL.Query().Get("follow") == "1"
	want := 0
	if s := r.URL.Query().Get("attempt"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("attempt %q", s))
			return
		}
		want = v
	}
	if s := r.URL.Query().Get("tail"); s != "" {
		k, err := strconv.Atoi(s)
		switch {
		case err != nil || k < 1:
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("tail %q: want a number of lines", s))
			return
		case follow:
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("tail and follow together are not supported yet: read the tail, then follow"))
			return
		}
		tw := &tailWriter{ResponseWriter: w, n: k}
		defer tw.flush()
		w = tw
	}
	if r.URL.Query().Get("timestamps") == "1" && follow {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("timestamps come with a finished attempt's sealed log: read it without follow"))
		return
	}
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	started := false
	// A follower may not have applied a task spawned a moment ago through
	// another node: a follow waits a little for its replica to learn it.
	unknownUntil := time.Now().Add(5 * time.Second)
	for {
		_, ch := n.fsm.Watch()
		var t *raftfsm.Task
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			if x := s.Tasks[id]; x != nil {
				t = x.Clone()
			}
		})
		switch {
		case t == nil && follow && time.Now().Before(unknownUntil):
			select {
			case <-ch:
			case <-time.After(time.Until(unknownUntil)):
			case <-r.Context().Done():
				return
			}
			continue
		case t == nil:
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no task %s", id))
			return
		case !n.mayRead(p, t.Job):
			writeError(w, http.StatusForbidden, api.CodeForbidden, errOtherJob(p, "the log of task "+id+", which is in another job"))
			return
		}
		attempt := t.Attempt
		if want > 0 {
			attempt = want
		}
		// A sealed log is read from any copy of its blob, never from
		// the node that ran it (which may be gone).
		if ref, ok := sealedLog(t, attempt); ok && n.serveSealed(w, r, t, ref) {
			return
		}
		waiting := t.Node == "" || (t.Node == n.cfg.Name && t.State == raftfsm.TaskAssigned && n.logs.Live(t.ID, attempt) == nil)
		if waiting && want == 0 {
			if !follow || t.State.Terminal() {
				if !started {
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				}
				return // nothing ran: an empty log
			}
			select {
			case <-ch:
				continue
			case <-r.Context().Done():
				return
			}
		}
		if t.Node != n.cfg.Name && want == 0 {
			base, ok := n.memberURL(t.Node)
			if !ok {
				// Its node is gone: a copy of the output it streamed
				// while it ran may be on another node.
				if n.serveLiveCopy(w, r, t.ID, attempt) {
					return
				}
				writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s ran on %s, which is not reachable now, and no other node holds a copy of its log yet", id, t.Node))
				return
			}
			n.proxy(w, r, base)
			return
		}
		if n.logs.Live(t.ID, attempt) == nil && !n.logs.Has(t.ID, attempt) && n.serveLiveCopy(w, r, t.ID, attempt) {
			return // an earlier attempt, run elsewhere, whose copy is here or on a peer
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		started = true
		err := n.logs.Stream(r.Context(), w, flush, t.ID, attempt, follow)
		if errors.Is(err, tasklog.ErrNoLog) {
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("node %s holds no log for task %s attempt %d", n.cfg.Name, id, attempt))
		}
		return
	}
}

// tailWriter keeps the last n lines of what is written and writes them at
// flush: a log read with ?tail=N, whatever copy serves it.
type tailWriter struct {
	http.ResponseWriter
	n   int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 1<<20 {
		t.trim()
	}
	return len(p), nil
}

// trim drops all but the last n lines (an unended last one counts).
func (t *tailWriter) trim() {
	end := len(t.buf)
	if end > 0 && t.buf[end-1] == '\n' {
		end--
	}
	for k := 0; end > 0; end-- {
		if t.buf[end-1] == '\n' {
			if k++; k == t.n {
				break
			}
		}
	}
	t.buf = append(t.buf[:0], t.buf[end:]...)
}

// Flush holds the stream back: the tail is known at the end.
func (t *tailWriter) Flush() {}

func (t *tailWriter) flush() {
	t.trim()
	t.ResponseWriter.Write(t.buf)
}
