package node

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ourci/ourci/node/api"
)

// handleLog streams an attempt's output (?attempt=N, default the current
// one) from the nearest source that holds it (serveLog, logs_follow.go):
// with ?follow=1 until the attempt ends, with ?tail=N its last N lines,
// with ?timestamps=1 each line stamped with its arrival time, from
// ?from= on (a byte offset, or a line number with timestamps: a follow
// resumed).
func (n *Node) handleLog(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	follow := r.URL.Query().Get("follow") == "1"
	want, ok := attemptParam(w, r)
	if !ok {
		return
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
	var from int64
	if s := r.URL.Query().Get("from"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("from %q: want a byte offset (a line number with timestamps)", s))
			return
		}
		from = v
	}
	n.serveLog(w, r, p, id, want, follow, r.URL.Query().Get("timestamps") == "1", from)
}

// attemptParam reads ?attempt=N (0 without it: the current attempt); a
// bad one is answered with a 400 and false.
func attemptParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("attempt")
	if s == "" {
		return 0, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("attempt %q: want a number from 1", s))
		return 0, false
	}
	return v, true
}

// handleLogSections answers the sections of an attempt's sealed log
// (?attempt=N, default the current one), read from any copy of its blob
// (openSealed: this node's, else a holder's), so from any node, a dead
// runner's log too. An attempt not sealed yet is a 409: its sections are
// known once it has ended.
func (n *Node) handleLogSections(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	attempt, ok := attemptParam(w, r)
	if !ok {
		return
	}
	t := n.taskCopy(id)
	switch {
	case t == nil:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no task %s", id))
		return
	case !n.mayRead(p, t.Job):
		writeError(w, http.StatusForbidden, api.CodeForbidden, errOtherJob(p, "the log of task "+id+", which is in another job"))
		return
	case attempt > t.Attempt:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("task %s has no attempt %d (its attempt is %d)", id, attempt, t.Attempt))
		return
	}
	if attempt == 0 {
		attempt = t.Attempt
	}
	ref, sealed := sealedLog(t, attempt)
	switch {
	case attempt == 0:
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("task %s has not run yet: its log's sections are available once an attempt has ended", id))
		return
	case !sealed:
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("task %s attempt %d has no sealed log yet (it still runs, or ended a moment ago): its log's sections are available once the attempt ends and its log is sealed", id, attempt))
		return
	}
	s, f, err := n.openSealed(r.Context(), ref)
	if err != nil {
		n.log.Info("task log sections: no copy of its sealed log to be had", "task", id, "attempt", attempt, "err", err)
		writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s attempt %d: no copy of its sealed log can be read now", id, attempt))
		return
	}
	defer f.Close()
	secs, truncated, err := s.Sections()
	if err != nil {
		n.log.Warn("task log sections: reading a sealed log", "task", id, "attempt", attempt, "err", err)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, fmt.Errorf("task %s attempt %d: reading its sealed log: %w", id, attempt, err))
		return
	}
	out := api.LogSections{SchemaVersion: api.SchemaVersion, Task: id, Attempt: attempt, Lines: s.Totals().Lines,
		Sections: make([]api.LogSection, len(secs)), Truncated: truncated}
	for i, sc := range secs {
		out.Sections[i] = api.LogSection{Name: sc.Name, Title: sc.Title, Style: sc.Style, FirstLine: sc.First, LastLine: sc.Last,
			Start: sc.Start, End: sc.End, DurationMs: sc.Duration().Milliseconds(), Depth: sc.Depth, Open: sc.Open, Collapsed: sc.Collapsed}
	}
	writeJSON(w, http.StatusOK, out)
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
