package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/peer"
)

// Task logs: GET /v1/tasks/{id}/log and /log/sections on any node, and on
// the peer port the copies of running attempts' logs other nodes stream
// here (POST /v1/internal/logs/{task}/{attempt}) and read from here (GET).

// Logs is the node's task logs: where an attempt's output is read from,
// and the copies it holds of other nodes' running attempts. Each method
// answers on w itself: what a log read can say (a relayed follow, a
// sealed blob, a copy that ends) is the source's to say.
type Logs interface {
	// Serve writes the log q asks for, of task id, from the nearest
	// source that holds it; a task token reads only its own job's.
	Serve(w http.ResponseWriter, r *http.Request, p auth.Principal, id string, q LogQuery)
	// ServeSections answers a sealed log's sections.
	ServeSections(w http.ResponseWriter, r *http.Request, p auth.Principal, id string, attempt int)
	// TakeChunks applies chunks of a running attempt's log that node from
	// streams here.
	TakeChunks(w http.ResponseWriter, task string, attempt int, from string, body []byte)
	// ServeCopy serves this node's copy of another node's running attempt.
	ServeCopy(w http.ResponseWriter, r *http.Request, task string, attempt int, q LogQuery)
}

// LogQuery is what of an attempt's log a read asks for.
type LogQuery struct {
	Attempt int   // 0: the current attempt
	Follow  bool  // until the attempt ends
	Stamped bool  // each line starts with its arrival time
	From    int64 // a byte offset, or with Stamped a line number: a follow resumed
}

// MaxLogChunks bounds one post of log chunks.
const MaxLogChunks = 16 << 20

// handleLog streams an attempt's output (?attempt=N, default the current
// one): with ?follow=1 until the attempt ends, with ?tail=N its last N
// lines, with ?timestamps=1 each line stamped with its arrival time, from
// ?from= on (a byte offset, or a line number with timestamps: a follow
// resumed).
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := LogQuery{Follow: r.URL.Query().Get("follow") == "1", Stamped: r.URL.Query().Get("timestamps") == "1"}
	var ok bool
	if q.Attempt, ok = attemptParam(w, r); !ok {
		return
	}
	if v := r.URL.Query().Get("tail"); v != "" {
		k, err := strconv.Atoi(v)
		switch {
		case err != nil || k < 1:
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("tail %q: want a number of lines", v))
			return
		case q.Follow:
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("tail and follow together are not supported yet: read the tail, then follow"))
			return
		}
		tw := &tailWriter{ResponseWriter: w, n: k}
		defer tw.flush()
		w = tw
	}
	if v := r.URL.Query().Get("from"); v != "" {
		from, err := strconv.ParseInt(v, 10, 64)
		if err != nil || from < 0 {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("from %q: want a byte offset (a line number with timestamps)", v))
			return
		}
		q.From = from
	}
	s.Logs.Serve(w, r, p, r.PathValue("id"), q)
}

func (s *Server) handleLogSections(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	attempt, ok := attemptParam(w, r)
	if !ok {
		return
	}
	s.Logs.ServeSections(w, r, p, r.PathValue("id"), attempt)
}

// attemptParam reads ?attempt=N (0 without it: the current attempt); a
// bad one is answered with a 400 and false.
func attemptParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("attempt")
	if v == "" {
		return 0, true
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("attempt %q: want a number from 1", v))
		return 0, false
	}
	return k, true
}

// handleLogChunks takes chunks of a running attempt's log from the node
// that runs it (node/peer.Client.PostLogChunks).
func (s *Server) handleLogChunks(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	task := r.PathValue("task")
	attempt, err := strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 1 || task == "" {
		s.Counters.LogChunksAnswered("refused")
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("want /v1/internal/logs/TASK/ATTEMPT"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxLogChunks))
	if err != nil {
		s.Counters.LogChunksAnswered("refused")
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeBadRequest, err)
		return
	}
	s.Logs.TakeChunks(w, task, attempt, r.Header.Get(peer.StreamerHeader), body)
}

// handleLiveLog serves this node's copy of a running attempt's log to a
// node that reads it for a client (?follow=1, ?timestamps=1, ?from=).
func (s *Server) handleLiveLog(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	attempt, _ := strconv.Atoi(r.PathValue("attempt"))
	v := r.URL.Query()
	from, _ := strconv.ParseInt(v.Get("from"), 10, 64)
	s.Logs.ServeCopy(w, r, r.PathValue("task"), attempt, LogQuery{Attempt: attempt, Follow: v.Get("follow") == "1", Stamped: v.Get("timestamps") == "1", From: max(from, 0)})
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
