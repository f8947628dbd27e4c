package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ourci/ourci/raftfsm"
)

// Sources are what the scrape-time collectors read. A nil field leaves its
// metrics out.
type Sources struct {
	// Ledger is the node's local replica: tasks by topic and state, jobs,
	// applied index.
	Ledger *raftfsm.FSM
	// RaftState returns the node's Raft role as raft.RaftState.String()
	// spells it ("Follower", "Candidate", "Leader", "Shutdown").
	RaftState func() string
	// Members returns how many live members this node's gossip sees
	// (itself included).
	Members func() int
	// BlobUsage returns the blobs stored on this node and their bytes.
	BlobUsage func() (count int, bytes int64, err error)
	// PeerRefused returns how many connections the peer port refused
	// (no node certificate of this mesh's CA, or no TLS at all).
	PeerRefused func() uint64
	// GossipBad returns how many gossip packets and streams this node's
	// memberlist refused or could not use (from its source-naming lines).
	GossipBad func() uint64
	// HTTPRefused returns how many connections the public API refused for
	// its per-client cap.
	HTTPRefused func() uint64
	// WebhookBusy returns how many webhooks were answered 503 because the
	// unverified webhook bytes in flight were at their cap.
	WebhookBusy func() uint64
	// WebhookInflight returns the webhook body bytes in flight now.
	WebhookInflight func() int64
	// LogBytes returns what this node keeps of task logs: raw files of
	// attempts run here and not sealed yet (disk), sealed logs it holds as
	// blobs (disk, also in the blob bytes), and copies of other nodes'
	// running attempts' output (memory).
	LogBytes func() (raw, sealed, copies int64)
	// CertExpiry is when this node's mesh certificate expires.
	CertExpiry time.Time
	// Unhealthy reports whether the node takes no work because its data
	// directory or Raft log cannot be written.
	Unhealthy func() bool
}

// Metrics holds one node's collectors. A nil *Metrics is valid: every
// method does nothing, so code paths that run without a node's metrics
// (unit tests building a bare Node) need no checks.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	taskWait      *prometheus.HistogramVec
	spawnToStart  *prometheus.HistogramVec
	taskRun       *prometheus.HistogramVec
	tasksStarted  *prometheus.CounterVec
	tasksFinished *prometheus.CounterVec

	raftCommit  prometheus.Histogram
	batchSize   prometheus.Histogram
	leadership  *prometheus.CounterVec
	blobFetched prometheus.Counter
	blobServed  *prometheus.CounterVec
	quota       *prometheus.CounterVec
	logChunks   *prometheus.CounterVec
}

// Bucket layouts, in seconds (or commands, for batches).
var (
	// waitBuckets spans a dispatch on an idle mesh (milliseconds) to a task
	// that queued for an hour behind busy slots.
	waitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	// runBuckets spans a trivial script to a four-hour hardware test.
	runBuckets = []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400}
	// commitBuckets spans a LAN commit (sub-millisecond) to the 10 s
	// apply timeout.
	commitBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)
	// batchBuckets: commands per Raft entry, up to the dispatcher's 256.
	batchBuckets = prometheus.ExponentialBuckets(1, 2, 9)
)

// New makes node's metrics on a fresh registry. Besides OurCI's own, the
// registry carries the Go runtime and process collectors.
func New(node string, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.taskWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ourci_task_wait_seconds",
		Help:    "Time a task waited for a node: ledger spawn (CreatedAt) to the assignment (AssignedAt) of the attempt this node starts. Observed by the node that runs the attempt.",
		Buckets: waitBuckets,
	}, []string{"topic"})
	m.spawnToStart = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ourci_task_spawn_to_start_seconds",
		Help:    "Ledger spawn (CreatedAt, the leader's clock) to this node's executor having started the attempt's process. Observed by the node that runs the attempt.",
		Buckets: waitBuckets,
	}, []string{"topic"})
	m.taskRun = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ourci_task_run_seconds",
		Help:    "Time an attempt's process ran on this node, from the executor's start to its exit (timed out and stopped attempts included).",
		Buckets: runBuckets,
	}, []string{"topic"})
	m.tasksStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_tasks_started_total",
		Help: "Attempts whose process this node started.",
	}, []string{"topic"})
	m.tasksFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_tasks_finished_total",
		Help: "Attempts this node ended, by outcome: passed, failed, timed_out (reported to the ledger) or stopped (the ledger took the attempt away, or the node shut down).",
	}, []string{"topic", "outcome"})
	m.raftCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ourci_raft_commit_seconds",
		Help:    "Leader: time from proposing one dispatcher entry to Raft until it was committed and applied to the leader's replica (successful applies only).",
		Buckets: commitBuckets,
	})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ourci_dispatch_batch_commands",
		Help:    "Leader: commands in each Raft entry the dispatcher proposed.",
		Buckets: batchBuckets,
	})
	m.leadership = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_raft_leadership_changes_total",
		Help: "Times this node gained or lost Raft leadership.",
	}, []string{"change"})
	m.blobFetched = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ourci_blob_fetched_bytes_total",
		Help: "Blob bytes this node downloaded from peers (resumed transfers count only the bytes that travelled).",
	})
	m.blobServed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_blob_served_bytes_total",
		Help: "Blob bytes this node sent: to peers fetching a copy (to=peer) or to API clients and tasks (to=client).",
	}, []string{"to"})
	m.quota = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_quota_refused_total",
		Help: "Requests this node refused for a quota: spawn_bytes, job_tasks, open_jobs, blob_bytes, job_blob_bytes.",
	}, []string{"quota"})
	m.logChunks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ourci_task_log_chunk_posts_total",
		Help: "Requests carrying chunks of another node's running attempt's output that this node answered, by answer: ok (applied, or already held), gap (409: a chunk before it is missing; the sender resends from the one named) or refused (any other error).",
	}, []string{"answer"})
	for _, a := range []string{"ok", "gap", "refused"} {
		m.logChunks.WithLabelValues(a)
	}
	for _, q := range []string{"spawn_bytes", "job_tasks", "open_jobs", "blob_bytes", "job_blob_bytes"} {
		m.quota.WithLabelValues(q)
	}
	for _, c := range []string{"gained", "lost"} {
		m.leadership.WithLabelValues(c) // present at 0 from the first scrape
	}
	for _, to := range []string{"peer", "client"} {
		m.blobServed.WithLabelValues(to)
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ourci_node_info", Help: "Always 1; names the node.", ConstLabels: prometheus.Labels{"node": node},
	})
	info.Set(1)
	m.reg.MustRegister(
		m.taskWait, m.spawnToStart, m.taskRun, m.tasksStarted, m.tasksFinished,
		m.raftCommit, m.batchSize, m.leadership, m.blobFetched, m.blobServed, m.quota, m.logChunks, info,
		&sourceCollector{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if src.Ledger != nil {
		m.reg.MustRegister(newLedgerCollector(src.Ledger))
	}
	if !src.CertExpiry.IsZero() {
		exp := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ourci_tls_cert_expiry_timestamp_seconds",
			Help: "When this node's mesh certificate expires (Unix time); peers refuse it from then on.",
		})
		exp.Set(float64(src.CertExpiry.Unix()))
		m.reg.MustRegister(exp)
	}
	if f := src.PeerRefused; f != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ourci_peer_refused_total",
			Help: "Connections the peer port (Raft and node-to-node API, mutual TLS) refused: no node certificate of this mesh's CA, a client certificate, or no TLS.",
		}, func() float64 { return float64(f()) }))
	}
	for _, c := range []struct {
		f          func() uint64
		name, help string
	}{
		{src.GossipBad, "ourci_gossip_bad_packets_total", "Gossip packets and streams this node refused or could not use (undecryptable, malformed, failed), each logged at most once per source per interval."},
		{src.HTTPRefused, "ourci_http_refused_total", "Connections the public API refused because their client address already had its cap of open connections."},
		{src.WebhookBusy, "ourci_webhook_busy_total", "GitHub webhooks answered 503 because the unverified webhook body bytes in flight were at their cap."},
	} {
		if f := c.f; f != nil {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(f()) }))
		}
	}
	if f := src.WebhookInflight; f != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ourci_webhook_inflight_bytes",
			Help: "GitHub webhook body bytes this node holds for requests in progress (reserved from the first byte read until the request is answered).",
		}, func() float64 { return float64(f()) }))
	}
	if f := src.LogBytes; f != nil {
		for i, g := range []struct{ name, help string }{
			{"ourci_task_log_raw_bytes", "Bytes of task logs on this node's disk that are not sealed yet (attempts running here, or whose seal is not recorded)."},
			{"ourci_task_log_sealed_bytes", "Bytes of sealed task logs this node holds as blobs (counted in ourci_blob_stored_bytes too)."},
			{"ourci_task_log_copy_bytes", "Bytes of other nodes' running attempts' output this node holds in memory (their streamed copies)."},
		} {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, func() float64 {
				raw, sealed, copies := f()
				return float64([]int64{raw, sealed, copies}[i])
			}))
		}
	}
	if f := src.Unhealthy; f != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ourci_node_unhealthy",
			Help: "1 while this node takes no work because its data directory or Raft log cannot be written (full disk, failing probe); the reason is in /v1/health and status.",
		}, func() float64 {
			if f() {
				return 1
			}
			return 0
		}))
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Registry is the node's registry (tests, and anyone adding collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format (text,
// or protobuf/OpenMetrics when the scraper asks). A collector that fails
// leaves its metrics out; the rest are still served.
func (m *Metrics) Handler() http.Handler { return m.handler }

// TaskStarted records that this node started an attempt's process at
// started (read from the clock the ledger's times come from): the wait for
// a node (created → assigned) and spawn-to-start (created → started).
// Negative spans (clock skew between the leader and this node) count as 0.
func (m *Metrics) TaskStarted(topic string, created, assigned, started time.Time) {
	if m == nil {
		return
	}
	if !created.IsZero() && !assigned.IsZero() {
		m.taskWait.WithLabelValues(topic).Observe(seconds(assigned.Sub(created)))
	}
	if !created.IsZero() {
		m.spawnToStart.WithLabelValues(topic).Observe(seconds(started.Sub(created)))
	}
	m.tasksStarted.WithLabelValues(topic).Inc()
}

// TaskRan records how long an attempt's process ran.
func (m *Metrics) TaskRan(topic string, d time.Duration) {
	if m == nil {
		return
	}
	m.taskRun.WithLabelValues(topic).Observe(seconds(d))
}

// TaskFinished counts an attempt this node ended, by outcome (a ledger
// task state, or "stopped").
func (m *Metrics) TaskFinished(topic, outcome string) {
	if m == nil {
		return
	}
	m.tasksFinished.WithLabelValues(topic, outcome).Inc()
}

// RaftCommitted records one committed dispatcher entry of commands
// commands that took d from proposal to applied.
func (m *Metrics) RaftCommitted(d time.Duration, commands int) {
	if m == nil {
		return
	}
	m.raftCommit.Observe(seconds(d))
	m.batchSize.Observe(float64(commands))
}

// LeadershipChanged counts this node gaining (leader) or losing leadership.
func (m *Metrics) LeadershipChanged(leader bool) {
	if m == nil {
		return
	}
	c := "lost"
	if leader {
		c = "gained"
	}
	m.leadership.WithLabelValues(c).Inc()
}

// QuotaRefused counts a request refused for a quota.
func (m *Metrics) QuotaRefused(quota string) {
	if m == nil {
		return
	}
	m.quota.WithLabelValues(quota).Inc()
}

// LogChunksAnswered counts a request of log chunks this node answered
// ("ok", "gap" or "refused").
func (m *Metrics) LogChunksAnswered(answer string) {
	if m == nil {
		return
	}
	m.logChunks.WithLabelValues(answer).Inc()
}

// BlobFetched adds n bytes downloaded from a peer.
func (m *Metrics) BlobFetched(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.blobFetched.Add(float64(n))
}

// BlobServed adds n bytes sent to ("peer" or "client").
func (m *Metrics) BlobServed(to string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.blobServed.WithLabelValues(to).Add(float64(n))
}

func seconds(d time.Duration) float64 { return max(d, 0).Seconds() }

// sourceCollector reads the Raft role, gossip membership and blob store at
// scrape time.
type sourceCollector struct{ src Sources }

var (
	raftStateDesc = prometheus.NewDesc("ourci_raft_state",
		"This node's Raft role: 1 for the current one (follower, candidate, leader, shutdown), 0 for the others.", []string{"state"}, nil)
	membersDesc = prometheus.NewDesc("ourci_gossip_members",
		"Live members this node's gossip sees, itself included.", nil, nil)
	blobBytesDesc = prometheus.NewDesc("ourci_blob_stored_bytes",
		"Bytes of the blob copies stored on this node (read from disk at scrape).", nil, nil)
	blobCountDesc = prometheus.NewDesc("ourci_blob_stored",
		"Blob copies stored on this node (read from disk at scrape).", nil, nil)
)

var raftStates = []string{"follower", "candidate", "leader", "shutdown"}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- raftStateDesc
	ch <- membersDesc
	ch <- blobBytesDesc
	ch <- blobCountDesc
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.RaftState != nil {
		cur := strings.ToLower(c.src.RaftState())
		for _, s := range raftStates {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(raftStateDesc, prometheus.GaugeValue, v, s)
		}
	}
	if c.src.Members != nil {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(c.src.Members()))
	}
	if c.src.BlobUsage != nil {
		count, bytes, err := c.src.BlobUsage()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(blobBytesDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(blobBytesDesc, prometheus.GaugeValue, float64(bytes))
		ch <- prometheus.MustNewConstMetric(blobCountDesc, prometheus.GaugeValue, float64(count))
	}
}
