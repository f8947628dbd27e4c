package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/raftfsm"
)

// maxBody bounds every request body the API reads.
const maxBody = 1 << 20

// forwardedHeader marks a request a follower passed to the leader; the
// leader never forwards it again.
const forwardedHeader = "X-Ourci-Forwarded"

// routes is the API. The public listener (peerPort false) serves people,
// scripts and tasks; the peer listener (peerPort true: mutual TLS on the Raft
// port, nodes of this mesh only) serves the same routes plus the internal
// node-to-node ones, which the public listener does not have at all.
func (n *Node) routes(peerPort bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", n.handleHealth)
	mux.HandleFunc("GET /metrics", n.metricsAuth(n.handleMetrics)) // Prometheus; cluster or metrics token (metrics_hooks.go)
	mux.HandleFunc("POST /v1/spawn", n.auth(n.spawners(n.leaderOnly(n.handleSpawn))))
	mux.HandleFunc("GET /v1/status", n.auth(n.handleStatus))
	mux.HandleFunc("GET /v1/ledger", n.auth(n.clusterOnly(n.handleLedger)))
	mux.HandleFunc("POST /v1/drain", n.auth(n.clusterOnly(n.handleDrain)))
	mux.HandleFunc("GET /v1/keyring", n.auth(n.clusterOnly(n.handleKeyring)))
	mux.HandleFunc("POST /v1/keyring", n.auth(n.clusterOnly(n.handleKeyring)))
	mux.HandleFunc("GET /v1/operator/snapshot", n.auth(n.clusterOnly(n.snapshotRoute(n.handleSnapshotSave))))     // backup (operator_snapshot.go)
	mux.HandleFunc("POST /v1/operator/snapshot", n.auth(n.clusterOnly(n.snapshotRoute(n.handleSnapshotRestore)))) // restore
	mux.HandleFunc("GET /v1/operator/raft", n.auth(n.clusterOnly(n.leaderOnly(n.handleRaftPeers))))               // list-peers (operator_raft.go)
	mux.HandleFunc("POST /v1/operator/raft/remove-peer", n.auth(n.clusterOnly(n.leaderOnly(n.handleRemovePeer)))) // remove-peer
	mux.HandleFunc("POST /webhook/github", n.webhookRoute(peerPort))
	mux.HandleFunc("POST /v1/jobs/{id}/approve", n.auth(n.operateOnly(n.leaderOnly(n.handleApprove))))
	n.registerUI(mux) // the browser UI: /, /jobs/{id}, /tasks/{id}, /mesh and their event streams
	mux.HandleFunc("GET /v1/jobs/{id}", n.auth(n.handleJob))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", n.auth(n.operateOnly(n.leaderOnly(n.handleCancel))))
	mux.HandleFunc("GET /v1/tasks/{id}/log", n.auth(n.handleLog))
	mux.HandleFunc("GET /v1/tasks/{id}/log/sections", n.auth(n.handleLogSections)) // logs --sections
	mux.HandleFunc("PUT /v1/blobs", n.auth(n.spawners(n.handleBlobPut)))
	mux.HandleFunc("GET /v1/blobs/{ref...}", n.auth(n.handleBlobGet))
	mux.HandleFunc("HEAD /v1/blobs/{ref...}", n.auth(n.handleBlobGet))
	mux.HandleFunc("GET /v1/blob/{token}/{ref...}", n.handleBlobURL)
	mux.HandleFunc("HEAD /v1/blob/{token}/{ref...}", n.handleBlobURL)
	if peerPort {
		mux.HandleFunc("POST /v1/internal/leave", n.auth(n.clusterOnly(n.leaderOnly(n.handleLeave))))
		mux.HandleFunc("POST /v1/internal/report", n.auth(n.clusterOnly(n.leaderOnly(n.handleReport)))) // older followers, and resets (write.go)
		mux.HandleFunc("POST "+peer.SubmitPath, n.auth(n.clusterOnly(n.leaderOnly(n.handleSubmit))))    // a follower's writes (write.go)
		mux.HandleFunc("GET /v1/internal/blobs/{hash}", n.auth(n.clusterOnly(n.handleInternalBlob)))
		mux.HandleFunc("HEAD /v1/internal/blobs/{hash}", n.auth(n.clusterOnly(n.handleInternalBlob)))
		mux.HandleFunc("POST /v1/internal/blobs/{hash}/pull", n.auth(n.clusterOnly(n.handlePull)))
		mux.HandleFunc("POST /v1/internal/logs/{task}/{attempt}", n.auth(n.clusterOnly(n.handleLogChunks)))
		mux.HandleFunc("GET /v1/internal/logs/{task}/{attempt}", n.auth(n.clusterOnly(n.handleLiveLog)))
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(forwardedHeader) // only peers forward
		mux.ServeHTTP(w, r)
	})
}

type handler func(w http.ResponseWriter, r *http.Request, p Principal)

type principalKey struct{}

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
func (n *Node) authenticate(w http.ResponseWriter, tok string) (Principal, bool) {
	if tok == "" {
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, errors.New("missing token: give the cluster secret (--secret-file) or $OURCI_TOKEN"))
		return Principal{}, false
	}
	p, err := n.cfg.Secret.Authenticate(tok)
	if err != nil {
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, errors.New("invalid token for this mesh"))
		return Principal{}, false
	}
	if p.Task == "" {
		return p, true
	}
	live, closed := false, ""
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		t := s.Tasks[p.Task]
		if t == nil || (p.Blob && t.Job != p.Job) {
			return
		}
		p.Job = t.Job
		live = t.Attempt == p.Attempt && t.State.Active()
		if !live {
			if j := s.Jobs[t.Job]; j.State == raftfsm.JobClosed {
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
		writeError(w, http.StatusConflict, api.CodeJobClosed, fmt.Errorf("%s; task %s can no longer act in it or spawn into it", closed, p.Task))
		return Principal{}, false
	case !live:
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, fmt.Errorf("task token expired: task %s attempt %d is not running", p.Task, p.Attempt))
		return Principal{}, false
	}
	return p, true
}

// auth admits a request with the cluster token, an operator token of the
// read or operate role, or the token of a task attempt that the local
// replica shows still live. A metrics token and a blob capability get 403:
// each has its one route (metricsAuth, handleBlobURL).
func (n *Node) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := n.authenticate(w, bearer(r))
		switch {
		case !ok:
			return
		case p.Blob:
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("a BLOB_URL capability only reads its job's blobs, through BLOB_URL (GET /v1/blob/TOKEN/REF): give the task's $OURCI_TOKEN here"))
			return
		case p.Role == RoleMetrics:
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("a metrics token only scrapes /metrics: give a read or operate token (ourci-node token create --role read|operate)"))
			return
		}
		h(w, r, p)
	}
}

// metricsAuth admits the cluster token and metrics tokens (Prometheus).
func (n *Node) metricsAuth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := n.authenticate(w, bearer(r))
		if !ok {
			return
		}
		if !p.Cluster && p.Role != RoleMetrics {
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("scraping /metrics needs a metrics token (ourci-node token create --role metrics) or the cluster token"))
			return
		}
		h(w, r, p)
	}
}

// operateOnly admits the cluster token and operate tokens.
func (n *Node) operateOnly(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if !p.May(RoleOperate) {
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("this needs the cluster token or an operate token"))
			return
		}
		h(w, r, p)
	}
}

// spawners admits task tokens (children in their own job) and operate and
// cluster tokens (new jobs).
func (n *Node) spawners(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if !p.IsTask() && !p.May(RoleOperate) {
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("a read token cannot spawn"))
			return
		}
		h(w, r, p)
	}
}

func (n *Node) clusterOnly(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if !p.Cluster {
			writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("this needs the cluster token"))
			return
		}
		h(w, r, p)
	}
}

// leaderOnly runs h on the leader; a follower passes the request, body
// unread, to the leader and relays the answer.
func (n *Node) leaderOnly(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		// A leader whose barrier has not passed yet takes the request a
		// moment later (it cannot answer writes before).
		if n.currentDispatcher() != nil || (n.IsLeader() && n.waitDispatcher(r.Context(), 5*time.Second)) {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			h(&indexWriter{ResponseWriter: w, n: n}, r, p)
			return
		}
		if r.Header.Get(forwardedHeader) != "" {
			writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, errors.New("leadership moved while forwarding; retry"))
			return
		}
		target, err := n.leaderURL(r.Context(), 5*time.Second)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, errNoLeader)
			return
		}
		if target == n.peerURL {
			// This node won the election while the request waited: its
			// leader loops are starting. Handle the request here.
			if n.waitDispatcher(r.Context(), 2*time.Second) {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
				h(&indexWriter{ResponseWriter: w, n: n}, r, p)
				return
			}
			writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, errNoLeader)
			return
		}
		n.proxy(w, r, target)
	}
}

// waitDispatcher waits until this node's leader loops run, or max passed,
// or it stops leading: woken by leadership changes, never by polling.
func (n *Node) waitDispatcher(ctx context.Context, max time.Duration) bool {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		changed := n.leading.wait() // before the checks: a change between them still wakes us
		if n.currentDispatcher() != nil {
			return true
		}
		if !n.IsLeader() {
			return false
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// proxy relays r to another node's API, the caller's token included.
func (n *Node) proxy(w http.ResponseWriter, r *http.Request, base string) {
	u, err := url.Parse(base)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	rp := &httputil.ReverseProxy{
		Transport: n.peerHTTP.Transport, // mutual TLS, connections kept per peer
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set(forwardedHeader, n.cfg.Name)
		},
		ModifyResponse: func(resp *http.Response) error {
			// Read your writes: answer only once this node's replica holds
			// what the leader applied for the request.
			// (Not while its Raft log cannot be written: the replica is
			// frozen, and the write is done all the same.)
			if idx, err := strconv.ParseUint(resp.Header.Get(indexHeader), 10, 64); err == nil && !n.replicaFrozen() {
				n.waitIndex(resp.Request.Context(), idx, 5*time.Second)
			}
			return nil
		},
		FlushInterval: -1, // stream (logs -f)
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, api.CodeNoLeader, fmt.Errorf("node %s unreachable: %w", base, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// indexHeader carries the ledger index a write was applied at.
const indexHeader = "X-Ourci-Index"

// indexWriter stamps write responses with the leader's applied index.
type indexWriter struct {
	http.ResponseWriter
	n *Node
}

func (w *indexWriter) WriteHeader(code int) {
	w.Header().Set(indexHeader, strconv.FormatUint(w.n.fsm.Index(), 10))
	w.ResponseWriter.WriteHeader(code)
}

// waitIndex waits until the local replica has applied idx, or max passed.
func (n *Node) waitIndex(ctx context.Context, idx uint64, max time.Duration) {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		cur, ch := n.fsm.Watch()
		if cur >= idx {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// waitReplica waits until cond holds on the local replica, or max passed
// or ctx ended, and reports whether it holds: a request naming what was
// written through another node a moment ago waits for this replica to
// catch up instead of answering "not found".
func (n *Node) waitReplica(ctx context.Context, max time.Duration, cond func(s *raftfsm.State) bool) bool {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		_, ch := n.fsm.Watch()
		ok := false
		n.fsm.Read(func(s *raftfsm.State, _ uint64) { ok = cond(s) })
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (n *Node) handleSpawn(w http.ResponseWriter, r *http.Request, p Principal) {
	var req api.SpawnRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !p.IsTask() && req.Source.Repo != "" {
		src, err := n.resolveSource(r.Context(), req.Source)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		req.Source = src
	}
	c, err := n.spawnCommand(req, p)
	switch {
	case errors.Is(err, ErrNotAccepted):
		writeError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	case errors.Is(err, errQuotaSize):
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	res, err := n.submit(r.Context(), c)
	if errors.Is(err, raftfsm.ErrQuota) {
		q := "job_tasks"
		if c.Spawn.NewJob != nil {
			q = "open_jobs"
		}
		n.metrics.QuotaRefused(q) // metrics
	}
	if err != nil {
		writeLedgerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: res.Job, Task: res.Task})
}

func (n *Node) handleCancel(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	c := raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: id, Reason: raftfsm.ReasonCancelled}}
	if _, err := n.submit(r.Context(), c); err != nil {
		writeLedgerError(w, err)
		return
	}
	d, ok := n.jobDetail(id)
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no job %s", id))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (n *Node) handleReport(w http.ResponseWriter, r *http.Request, p Principal) {
	var rep api.Report
	if !decodeBody(w, r, &rep) {
		return
	}
	c, err := n.reportCommand(rep)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	if _, err := n.submit(r.Context(), c); err != nil {
		writeLedgerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, api.CodeBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, api.Error{SchemaVersion: api.SchemaVersion, Error: err.Error(), Code: kind})
}

// writeLedgerError maps a refusal or a failed proposal to a status code.
func writeLedgerError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, raftfsm.ErrJobClosed):
		writeError(w, http.StatusConflict, api.CodeJobClosed, err)
	case errors.Is(err, raftfsm.ErrStaleAttempt):
		writeError(w, http.StatusConflict, api.CodeStale, err)
	case errors.Is(err, raftfsm.ErrConflict):
		writeError(w, http.StatusConflict, api.CodeConflict, err)
	case errors.Is(err, raftfsm.ErrNotFound):
		writeError(w, http.StatusNotFound, api.CodeNotFound, err)
	case errors.Is(err, raftfsm.ErrQuota):
		writeError(w, http.StatusTooManyRequests, api.CodeQuota, err)
	case errors.Is(err, raftfsm.ErrInvalid):
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
	case errors.Is(err, ErrNotYet):
		writeError(w, http.StatusServiceUnavailable, api.CodeNotYet, err)
	case errors.Is(err, errNotLeader):
		writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, err)
	default:
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
	}
}
