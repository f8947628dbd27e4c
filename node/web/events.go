package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// jobEvents streams a job's page body each time the job changes (its
// ledger index Modified moves past the last one sent) and ends once the job
// has closed. ?index=N (or a reconnecting browser's Last-Event-ID) skips
// the state the page already shows.
func (u *UI) jobEvents(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	if !a.MayRead(id) {
		http.Error(w, "403: "+errForbidden.Error(), http.StatusForbidden)
		return
	}
	if _, ok := u.src.Job(id); !ok {
		http.Error(w, "404: no job "+id, http.StatusNotFound)
		return
	}
	after := uint64(0)
	for _, s := range []string{r.URL.Query().Get("index"), r.Header.Get("Last-Event-ID")} {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			after = max(after, v)
		}
	}
	es, err := startEvents(w)
	if err != nil {
		return
	}
	hb := time.NewTicker(u.Heartbeat)
	defer hb.Stop()
	for {
		_, changed := u.src.Watch()
		j, ok := u.src.Job(id)
		if !ok {
			es.send("problem", "", "the job is gone")
			return
		}
		if j.Index > after {
			html, err := fragment("jobbody", jobBody(j, u.src.Now()))
			if err != nil {
				es.send("problem", "", err.Error())
				return
			}
			if es.send("job", strconv.FormatUint(j.Index, 10), html) != nil {
				return
			}
			after = j.Index
		}
		if j.Job.State != "open" {
			es.send("end", "", "closed")
			return
		}
		select {
		case <-changed:
		case <-hb.C:
			if es.heartbeat() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-u.src.Done():
			return
		}
	}
}

// logEvents streams a task's log as rendered HTML chunks while it is
// written, and the task's summary whenever the task changes. It follows
// the current attempt, and the next one if the task is retried, and ends
// once the task has ended. Each chunk's event ID is ATTEMPT:OFFSET, so a
// reconnecting browser gets only what it lacks.
func (u *UI) logEvents(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	t, ok := u.readableTask(w, id, a)
	if !ok {
		return
	}
	es, err := startEvents(w)
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-u.src.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	s := &logSession{u: u, es: es, id: id, last: t}
	resumeAttempt, resumeOffset := parseLogID(r.Header.Get("Last-Event-ID"))
	if resumeAttempt != 0 && resumeAttempt != t.Task.Attempt {
		resumeOffset = 0
		if es.send("reset", "", "reset") != nil {
			return
		}
	}
	hb := time.NewTicker(u.Heartbeat)
	defer hb.Stop()
	s.hb = hb.C
	skip := resumeOffset
	for {
		attempt := s.last.Task.Attempt
		if !s.follow(ctx, attempt, skip) {
			return
		}
		skip = 0
		// The log ended: wait for the ledger to say how the task ended, or
		// for its next attempt.
		next, ok := s.waitEnd(ctx, attempt)
		if !ok {
			return
		}
		if !next {
			html, _ := fragment("taskhead", taskHead(s.last, u.src.Now()))
			es.send("end", "", html)
			return
		}
		if es.send("log", "", fmt.Sprintf("\n<span class=\"f93 b\">[ourci] attempt %d</span>\n", s.last.Task.Attempt)) != nil {
			return
		}
	}
}

// parseLogID reads a log event ID, ATTEMPT:OFFSET.
func parseLogID(s string) (attempt int, offset int64) {
	as, os, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0
	}
	a, err1 := strconv.Atoi(as)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil || a < 1 || o < 0 {
		return 0, 0
	}
	return a, o
}

// logSession is one browser following one task's log.
type logSession struct {
	u    *UI
	es   *eventStream
	id   string
	last Task // the task as last sent
	hb   <-chan time.Time
}

// refresh sends the task's summary if the task changed since it was last
// sent. It reports false when the stream broke.
func (s *logSession) refresh() bool {
	t, ok := s.u.src.Task(s.id)
	if !ok || reflect.DeepEqual(t, s.last) {
		return true
	}
	s.last = t
	html, err := fragment("taskhead", taskHead(t, s.u.src.Now()))
	if err != nil {
		return true
	}
	return s.es.send("task", "", html) == nil
}

// follow streams one attempt's log until it ends; skip bytes of it the
// browser already has. It reports false when the stream is over (the
// browser left, the node stops, or the log cannot be read).
func (s *logSession) follow(ctx context.Context, attempt int, skip int64) bool {
	chunks := make(chan []byte)
	ended := make(chan error, 1)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { stop(); <-done }()
	go func() {
		defer close(done)
		rc, err := s.u.src.Log(fctx, s.id, true)
		if err != nil {
			ended <- err
			return
		}
		defer rc.Close()
		buf := make([]byte, 32<<10)
		for {
			k, err := rc.Read(buf)
			if k > 0 {
				select {
				case chunks <- append([]byte(nil), buf[:k]...):
				case <-fctx.Done():
					ended <- fctx.Err()
					return
				}
			}
			if err == io.EOF {
				ended <- nil
				return
			}
			if err != nil {
				ended <- err
				return
			}
		}
	}()
	var ren ANSI
	var off int64
	_, changed := s.u.src.Watch()
	if !s.refresh() {
		return false
	}
	for {
		select {
		case c := <-chunks:
			if off < skip {
				k := min(int64(len(c)), skip-off)
				ren.Render(c[:k]) // the browser has it: keep only the state
				off += k
				c = c[k:]
			}
			if len(c) == 0 {
				continue
			}
			html := ren.Render(c)
			off += int64(len(c))
			if html == "" {
				continue
			}
			id := strconv.Itoa(attempt) + ":" + strconv.FormatInt(off-int64(ren.Pending()), 10)
			if s.es.send("log", id, html) != nil {
				return false
			}
		case err := <-ended:
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				s.es.send("problem", "", "the log cannot be followed: "+err.Error())
				return false
			}
			if ren.Pending() > 0 {
				s.es.send("log", "", "\ufffd")
			}
			return true
		case <-changed:
			_, changed = s.u.src.Watch()
			if !s.refresh() {
				return false
			}
		case <-s.hb:
			if s.es.heartbeat() != nil {
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// waitEnd waits, up to FinishWait, until the ledger shows the task ended
// (next false) or moved on to a later attempt than attempt (next true).
// ok is false when the stream is over.
func (s *logSession) waitEnd(ctx context.Context, attempt int) (next, ok bool) {
	timer := time.NewTimer(s.u.FinishWait)
	defer timer.Stop()
	for {
		_, changed := s.u.src.Watch()
		if !s.refresh() {
			return false, false
		}
		switch {
		case s.last.Task.State.Terminal():
			return false, true
		case s.last.Task.Attempt > attempt:
			return true, true
		}
		select {
		case <-changed:
		case <-s.hb:
			if s.es.heartbeat() != nil {
				return false, false
			}
		case <-timer.C:
			return false, true // the page says where the ledger stands
		case <-ctx.Done():
			return false, false
		}
	}
}
