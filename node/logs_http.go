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
				writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s ran on %s, which is not reachable now", id, t.Node))
				return
			}
			n.proxy(w, r, base)
			return
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
