package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
)

// Access is what a request's token lets it see.
type Access struct {
	Cluster bool   // the cluster token: everything
	Job     string // a task token: only this job
}

// MayRead reports whether the holder may see job.
func (a Access) MayRead(job string) bool { return a.Cluster || (job != "" && a.Job == job) }

// Job is a job as its page shows it.
type Job struct {
	api.JobDetail        // Index is the Raft index that last changed the job
	Blobs         []Blob // its named blobs, by name
}

// Blob is a blob a job names.
type Blob struct {
	Name string
	Hash string
	Size int64
}

// Task is one task and the job it belongs to.
type Task struct {
	Job  string
	Task api.TaskView
}

// Source is what the UI reads. Every method must be safe for concurrent use.
type Source interface {
	// Authenticate checks an API token: the cluster token, or the token of
	// a task attempt that is still running.
	Authenticate(token string) (Access, error)
	// NodeName names the node serving the UI.
	NodeName() string
	// Now is the node's clock (the one that stamps ledger times).
	Now() time.Time
	// Status is the mesh as this node sees it.
	Status() api.Status
	// Jobs returns up to n jobs, newest first.
	Jobs(n int) []api.JobView
	// Job reads a job from the local replica.
	Job(id string) (Job, bool)
	// Task reads a task from the local replica.
	Task(id string) (Task, bool)
	// Watch returns the replica's applied index and a channel closed when
	// a later entry is applied.
	Watch() (uint64, <-chan struct{})
	// Log opens a task's output (its current attempt) wherever it ran; with
	// follow the stream lasts until the attempt ends.
	Log(ctx context.Context, task string, follow bool) (io.ReadCloser, error)
	// StampedLog opens a finished task's log (its current attempt) with
	// each line after its arrival time, as GET /v1/tasks/{id}/log
	// ?timestamps=1 answers it: RFC 3339 UTC to the millisecond, a space.
	StampedLog(ctx context.Context, task string) (io.ReadCloser, error)
	// LogSections returns the sections of an attempt's sealed log; a log
	// not sealed yet is an api.StatusError with api.CodeConflict.
	LogSections(ctx context.Context, task string, attempt int) (api.LogSections, error)
	// ServeBlob answers r with the blob job names name.
	ServeBlob(w http.ResponseWriter, r *http.Request, job, name string)
	// Done is closed when the node shuts down: live streams end.
	Done() <-chan struct{}
}

// UI serves the pages.
type UI struct {
	src Source
	// Heartbeat is how often an idle event stream sends a comment, so that
	// proxies and browsers keep it open.
	Heartbeat time.Duration
	// FinishWait bounds how long a task's log stream, once the log ended,
	// waits for the ledger to record how the task ended.
	FinishWait time.Duration
}

// New returns the UI over src.
func New(src Source) *UI {
	return &UI{src: src, Heartbeat: 15 * time.Second, FinishWait: 10 * time.Second}
}

// Register adds the UI's routes to mux.
func (u *UI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", u.auth(u.jobsPage))
	mux.HandleFunc("GET /jobs/{id}", u.auth(u.jobPage))
	mux.HandleFunc("GET /jobs/{id}/events", u.auth(u.jobEvents))
	mux.HandleFunc("GET /jobs/{id}/blobs/{name...}", u.auth(u.blob))
	mux.HandleFunc("GET /tasks/{id}", u.auth(u.taskPage))
	mux.HandleFunc("GET /tasks/{id}/log", u.auth(u.rawLog))
	mux.HandleFunc("GET /tasks/{id}/log/events", u.auth(u.logEvents))
	mux.HandleFunc("GET /mesh", u.auth(u.meshPage))
}

// Handler returns a mux serving only the UI (tests).
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	u.Register(mux)
	return mux
}

type handler func(w http.ResponseWriter, r *http.Request, a Access)

// realm is what the browser's password prompt shows.
const realm = `Basic realm="ourci: any user name, an API token as password", charset="UTF-8"`

// auth admits a request with an API token given as the password of HTTP
// Basic auth (any user name), or as a bearer token.
func (u *UI) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := ""
		if _, pw, ok := r.BasicAuth(); ok {
			tok = pw
		} else if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = b
		}
		if tok == "" {
			w.Header().Set("WWW-Authenticate", realm)
			u.fail(w, http.StatusUnauthorized, errors.New("give an API token as the password (any user name)"))
			return
		}
		a, err := u.src.Authenticate(tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", realm)
			u.fail(w, http.StatusUnauthorized, err)
			return
		}
		h(w, r, a)
	}
}
