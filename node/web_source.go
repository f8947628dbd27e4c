package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/web"
	"github.com/ourci/ourci/raftfsm"
)

// registerUI adds the browser UI (package web) to mux.
func (n *Node) registerUI(mux *http.ServeMux) {
	web.New(webSource{n}).Register(mux)
}

// webSource is what the UI reads from a node.
type webSource struct{ n *Node }

var _ web.Source = webSource{}

// Authenticate admits the cluster token and read and operate tokens (they
// see everything: the UI only reads), and a task token while its attempt
// runs (it sees only its job), as the API does. A metrics token and a blob
// capability open no page.
func (s webSource) Authenticate(token string) (web.Access, error) {
	p, err := s.n.cfg.Secret.Authenticate(token)
	if err != nil {
		return web.Access{}, errors.New("invalid token for this mesh: give the cluster token (ourci-node token), a read token (ourci-node token create --role read) or a running task's token")
	}
	switch {
	case p.May(RoleRead):
		return web.Access{Cluster: true}, nil
	case !p.IsTask():
		return web.Access{}, errors.New("this token opens no page (a metrics token only scrapes /metrics, a BLOB_URL capability only reads blobs): give a read token (ourci-node token create --role read) or a running task's token")
	}
	var a web.Access
	live := false
	s.n.fsm.Read(func(st *raftfsm.State, _ uint64) {
		if t := st.Tasks[p.Task]; t != nil {
			live = t.Attempt == p.Attempt && t.State.Active()
			a.Job = t.Job
		}
	})
	if !live {
		return web.Access{}, fmt.Errorf("task token expired: task %s attempt %d is not running", p.Task, p.Attempt)
	}
	return a, nil
}

func (s webSource) NodeName() string                 { return s.n.cfg.Name }
func (s webSource) Now() time.Time                   { return s.n.cfg.Clock.Now() }
func (s webSource) Status() api.Status               { return s.n.Status() }
func (s webSource) Watch() (uint64, <-chan struct{}) { return s.n.fsm.Watch() }
func (s webSource) Done() <-chan struct{}            { return s.n.ctx.Done() }

func (s webSource) Jobs(k int) []api.JobView {
	var out []api.JobView
	s.n.fsm.Read(func(st *raftfsm.State, _ uint64) {
		for _, j := range st.RecentJobs(k) {
			out = append(out, api.NewJobView(j))
		}
	})
	return out
}

func (s webSource) Job(id string) (web.Job, bool) {
	d, ok := s.n.jobDetail(id)
	if !ok {
		return web.Job{}, false
	}
	out := web.Job{JobDetail: d}
	s.n.fsm.Read(func(st *raftfsm.State, _ uint64) {
		if j := st.Jobs[id]; j != nil {
			for name, h := range j.Blobs {
				b := web.Blob{Name: name, Hash: h}
				if bl := st.Blobs[h]; bl != nil {
					b.Size = bl.Size
				}
				out.Blobs = append(out.Blobs, b)
			}
		}
	})
	slices.SortFunc(out.Blobs, func(a, b web.Blob) int { return cmp.Compare(a.Name, b.Name) })
	return out, true
}

func (s webSource) Task(id string) (web.Task, bool) {
	members := s.n.gossip.Members()
	var out web.Task
	found := false
	s.n.fsm.Read(func(st *raftfsm.State, _ uint64) {
		t := st.Tasks[id]
		if t == nil {
			return
		}
		found = true
		out.Job = t.Job
		out.Task = api.NewTaskView(t)
		if t.State == raftfsm.TaskQueued {
			out.Task.Waiting = taskWaiting(st, t, members)
		}
	})
	return out, found
}

// Log follows the task's log through this node's own API, which relays to
// the node that runs (or ran) the task.
func (s webSource) Log(ctx context.Context, task string, follow bool) (io.ReadCloser, error) {
	return s.n.clusterClient(s.n.httpURL).Log(ctx, task, follow)
}

// StampedLog reads the task's log with its lines' arrival times, through
// this node's own API.
func (s webSource) StampedLog(ctx context.Context, task string) (io.ReadCloser, error) {
	return s.n.clusterClient(s.n.httpURL).LogOf(ctx, task, api.LogOptions{Timestamps: true})
}

// LogSections reads an attempt's sections through this node's own API.
func (s webSource) LogSections(ctx context.Context, task string, attempt int) (api.LogSections, error) {
	return s.n.clusterClient(s.n.httpURL).LogSections(ctx, task, attempt)
}

// ServeBlob serves the blob job names name (or a hash job refers to), as
// GET /v1/blobs/NAME?job=JOB does: the UI has checked that the browser may
// read the job, and a browser sends HTTP Basic credentials, which the API
// does not take. Nothing outside the job is served, whoever asks.
func (s webSource) ServeBlob(w http.ResponseWriter, r *http.Request, job, name string) {
	s.n.api.ServeBlobRef(w, r, job, true, name)
}
