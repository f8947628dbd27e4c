package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/peer"
)

// ForwardedHeader marks a request a follower passed to the leader; the
// leader never forwards it again. The public listener drops it.
const ForwardedHeader = "X-Ourci-Forwarded"

// Leadership is where writes run: this node while its dispatcher runs,
// else the leader the relay finds.
type Leadership interface {
	// Dispatching reports whether this node's dispatcher runs (it leads,
	// and its barrier passed).
	Dispatching() bool
	// WaitDispatching waits until it does, or max passed, or this node
	// stops leading, and reports whether it does.
	WaitDispatching(ctx context.Context, max time.Duration) bool
	IsLeader() bool
	// LeaderURL is the leader's peer API, waiting up to max for one.
	LeaderURL(ctx context.Context, max time.Duration) (string, error)
	PeerURL() string // this node's peer API
	Name() string    // this node's
	// Transport reaches peers (mutual TLS, connections kept per peer).
	Transport() http.RoundTripper
	// Frozen reports whether this replica's Raft log cannot be written.
	Frozen() bool
}

// LeaderOnly runs h on the leader; a follower passes the request, body
// unread, to the leader and relays the answer once its own replica holds
// what the leader applied for it (read your writes).
func (s *Server) LeaderOnly(h Handler) Handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		// A leader whose barrier has not passed yet takes the request a
		// moment later (it cannot answer writes before).
		if s.Lead.Dispatching() || (s.Lead.IsLeader() && s.Lead.WaitDispatching(r.Context(), 5*time.Second)) {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
			h(&indexWriter{ResponseWriter: w, l: s.Ledger}, r, p)
			return
		}
		if r.Header.Get(ForwardedHeader) != "" {
			WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, errors.New("leadership moved while forwarding; retry"))
			return
		}
		target, err := s.Lead.LeaderURL(r.Context(), 5*time.Second)
		if err != nil {
			WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, peer.ErrNoLeader)
			return
		}
		if target == s.Lead.PeerURL() {
			// This node won the election while the request waited: its
			// leader loops are starting. Handle the request here.
			if s.Lead.WaitDispatching(r.Context(), 2*time.Second) {
				r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
				h(&indexWriter{ResponseWriter: w, l: s.Ledger}, r, p)
				return
			}
			WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, peer.ErrNoLeader)
			return
		}
		s.Proxy(w, r, target)
	}
}

// Proxy relays r to another node's API, the caller's token included.
func (s *Server) Proxy(w http.ResponseWriter, r *http.Request, base string) {
	u, err := url.Parse(base)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	rp := &httputil.ReverseProxy{
		Transport: s.Lead.Transport(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set(ForwardedHeader, s.Lead.Name())
		},
		ModifyResponse: func(resp *http.Response) error {
			// Read your writes: answer only once this node's replica holds
			// what the leader applied for the request.
			// (Not while its Raft log cannot be written: the replica is
			// frozen, and the write is done all the same.)
			if idx, err := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64); err == nil && !s.Lead.Frozen() {
				WaitIndex(resp.Request.Context(), s.Ledger, idx, 5*time.Second)
			}
			return nil
		},
		FlushInterval: -1, // stream (logs -f)
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			WriteError(w, http.StatusBadGateway, api.CodeNoLeader, fmt.Errorf("node %s unreachable: %w", base, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// indexWriter stamps write responses with the leader's applied index.
type indexWriter struct {
	http.ResponseWriter
	l Ledger
}

func (w *indexWriter) WriteHeader(code int) {
	w.Header().Set(api.IndexHeader, strconv.FormatUint(w.l.Index(), 10))
	w.ResponseWriter.WriteHeader(code)
}

// WaitIndex waits until l has applied idx, or max passed, or ctx ended.
func WaitIndex(ctx context.Context, l Ledger, idx uint64, max time.Duration) {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		cur, ch := l.Watch()
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
