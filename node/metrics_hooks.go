package node

import (
	"io"
	"net/http"

	"github.com/ourci/ourci/node/metrics"
	"github.com/ourci/ourci/raftfsm"
)

// The node's Prometheus metrics (package node/metrics) are served at
// GET /metrics with the cluster token, like every other API call but
// /v1/health: Prometheus sends it with `authorization: {credentials_file:
// ...}` holding the output of `ourci-node token`. Task tokens are refused.
//
// The observation calls sit where the events happen, each marked
// "metrics:": the runner (task wait, spawn-to-start, run time, outcomes),
// the dispatcher's apply (Raft commit time, batch size), leadershipLoop
// (leadership changes), ensureBlob (bytes fetched) and the blob handlers
// (bytes served). State metrics are read at scrape time; see newMetrics.

// newMetrics makes the node's metrics over its replica, Raft, gossip and
// blob store (read at scrape time). It runs in Start once those exist.
func (n *Node) newMetrics() *metrics.Metrics {
	return metrics.New(n.cfg.Name, metrics.Sources{
		Ledger:          n.fsm,
		RaftState:       func() string { return n.raft.State().String() },
		Members:         func() int { return len(n.gossip.Members()) },
		BlobUsage:       n.blobs.Usage,
		PeerRefused:     n.peerRefused.Load,
		GossipBad:       n.gossip.BadPackets,
		HTTPRefused:     n.refused.http.Load,
		WebhookBusy:     n.hooks.Busy,
		WebhookInflight: n.hooks.InUse,
		CertExpiry:      n.peer.NotAfter(),
		Unhealthy:       func() bool { return n.Unhealthy() != "" },
		LogBytes:        n.logBytes,
	})
}

// entryCommands is how many ledger commands one Raft entry carries.
func entryCommands(c raftfsm.Command) int {
	if c.Type == raftfsm.CmdBatch {
		return len(c.Batch)
	}
	return 1
}

// blobFetchClient is n.peerHTTP counting the blob bytes that peers send
// (ourci_blob_fetched_bytes_total): only successful (200, 206) bodies, and
// only the bytes actually read, so a resumed transfer counts what travelled.
func (n *Node) blobFetchClient() *http.Client {
	if n.metrics == nil {
		return n.peerHTTP
	}
	c := *n.peerHTTP
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = countingTransport{base: base, add: n.metrics.BlobFetched}
	return &c
}

type countingTransport struct {
	base http.RoundTripper
	add  func(int64)
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
		resp.Body = &countingBody{ReadCloser: resp.Body, add: t.add}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	add func(int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.add(int64(k))
	return k, err
}

// countServed wraps w so the blob bytes of a successful (2xx) response
// count into ourci_blob_served_bytes_total{to=to} as they are written; a
// transfer broken off midway counts what was sent.
func (n *Node) countServed(w http.ResponseWriter, to string) http.ResponseWriter {
	if n.metrics == nil {
		return w
	}
	return &servedWriter{ResponseWriter: w, m: n.metrics, to: to, code: http.StatusOK}
}

type servedWriter struct {
	http.ResponseWriter
	m    *metrics.Metrics
	to   string
	code int
}

func (w *servedWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *servedWriter) Write(p []byte) (int, error) {
	k, err := w.ResponseWriter.Write(p)
	if w.code/100 == 2 {
		w.m.BlobServed(w.to, int64(k))
	}
	return k, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *servedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
