package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/raftfsm"
)

// bearer is the request's bearer token, or "".
func bearer(r *http.Request) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tok
	}
	return ""
}

// authenticate checks tok: its signature and, for a token bound to an
// attempt (a task token, a blob capability), that the local replica shows
// that attempt still live (and, for a capability, in the job it names). It
// sets a task token's Job from the ledger. A refusal is written to w.
func (s *Server) authenticate(w http.ResponseWriter, tok string) (auth.Principal, bool) {
	if tok == "" {
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, errors.New("missing token: give the cluster secret (--secret-file) or $OURCI_TOKEN"))
		return auth.Principal{}, false
	}
	p, err := s.Secret.Authenticate(tok)
	if err != nil {
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, errors.New("invalid token for this mesh"))
		return auth.Principal{}, false
	}
	if p.Task == "" {
		return p, true
	}
	live, closed := false, ""
	s.Ledger.Read(func(st *raftfsm.State, _ uint64) {
		t := st.Tasks[p.Task]
		if t == nil || (p.Blob && t.Job != p.Job) {
			return
		}
		p.Job = t.Job
		live = t.Attempt == p.Attempt && t.State.Active()
		if !live {
			if j := st.Jobs[t.Job]; j.State == raftfsm.JobClosed {
				closed = fmt.Sprintf("job %s is closed (%s", j.ID, j.Status)
				if j.Reason != "" {
					closed += ": " + j.Reason
				}
				closed += ")"
			}
		}
	})
	switch {
	case closed != "":
		WriteError(w, http.StatusConflict, api.CodeJobClosed, fmt.Errorf("%s; task %s can no longer act in it or spawn into it", closed, p.Task))
		return auth.Principal{}, false
	case !live:
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, fmt.Errorf("task token expired: task %s attempt %d is not running", p.Task, p.Attempt))
		return auth.Principal{}, false
	}
	return p, true
}

// Authenticate is the authentication of the routes that take a token
// outside a header (BLOB_URL): the principal, or false with the refusal
// written.
func (s *Server) Authenticate(w http.ResponseWriter, tok string) (auth.Principal, bool) {
	return s.authenticate(w, tok)
}

// Auth admits a request with the cluster token, an operator token of the
// read or operate role, or the token of a task attempt that the local
// replica shows still live. A metrics token and a blob capability get 403:
// each has its one route (MetricsAuth, BLOB_URL).
func (s *Server) Auth(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, bearer(r))
		switch {
		case !ok:
			return
		case p.Blob:
			WriteError(w, http.StatusForbidden, api.CodeForbidden, errors.New("a BLOB_URL capability only reads its job's blobs, through BLOB_URL (GET /v1/blob/TOKEN/REF): give the task's $OURCI_TOKEN here"))
			return
		case p.Role == auth.RoleMetrics:
			WriteError(w, http.StatusForbidden, api.CodeForbidden, errors.New("a metrics token only scrapes /metrics: give a read or operate token (ourci-node token create --role read|operate)"))
			return
		}
		h(w, r, p)
	}
}

// MetricsAuth admits the cluster token and metrics tokens (Prometheus).
func (s *Server) MetricsAuth(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, bearer(r))
		if !ok {
			return
		}
		if !p.Cluster && p.Role != auth.RoleMetrics {
			WriteError(w, http.StatusForbidden, api.CodeForbidden, errors.New("scraping /metrics needs a metrics token (ourci-node token create --role metrics) or the cluster token"))
			return
		}
		h(w, r, p)
	}
}

// require admits what may admits, else answers 403 with refusal.
func require(h Handler, may func(p auth.Principal) bool, refusal string) Handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		if !may(p) {
			WriteError(w, http.StatusForbidden, api.CodeForbidden, errors.New(refusal))
			return
		}
		h(w, r, p)
	}
}

// OperateOnly admits the cluster token and operate tokens.
func OperateOnly(h Handler) Handler {
	return require(h, func(p auth.Principal) bool { return p.May(auth.RoleOperate) }, "this needs the cluster token or an operate token")
}

// ReadOnly admits the cluster token and read and operate tokens (no task).
func ReadOnly(h Handler) Handler {
	return require(h, func(p auth.Principal) bool { return p.May(auth.RoleRead) }, "this needs a read or operate token, or the cluster token")
}

// Spawners admits task tokens (children in their own job) and operate and
// cluster tokens (new jobs).
func Spawners(h Handler) Handler {
	return require(h, func(p auth.Principal) bool { return p.IsTask() || p.May(auth.RoleOperate) }, "a read token cannot spawn")
}

// ClusterOnly admits the cluster token.
func ClusterOnly(h Handler) Handler {
	return require(h, func(p auth.Principal) bool { return p.Cluster }, "this needs the cluster token")
}

// MayRead reports whether p may read job's detail and logs: a read role,
// or a task token of that job.
func MayRead(l Ledger, p auth.Principal, job string) bool {
	if p.May(auth.RoleRead) {
		return true
	}
	if !p.IsTask() {
		return false
	}
	ok := false
	l.Read(func(s *raftfsm.State, _ uint64) {
		t := s.Tasks[p.Task]
		ok = t != nil && t.Job == job
	})
	return ok
}

// OtherJobError is the refusal of a task token that asks for what
// (another job, another job's log).
func OtherJobError(p auth.Principal, what string) error {
	return fmt.Errorf("task %s may read only its own job %s, not %s: use an operator token (ourci-node token create --role read) for other jobs", p.Task, p.Job, what)
}
