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
