package node_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest"
)

// scrapeMetrics GETs a node's /metrics with token and parses the text
// exposition format.
func scrapeMetrics(t *testing.T, n *node.Node, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, n.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", n.Name(), resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", n.Name(), err)
	}
	return fams
}

// metricValue returns the value of the series of family name whose labels
// include want: a gauge's or counter's value, a histogram's sample count.
// A missing series reads 0.
func metricValue(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
series:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if got[want[i]] != want[i+1] {
				continue series
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// TestMetricsMoveDuringAJob scrapes every node's /metrics while a job runs
// and after it ends, and sees the ledger gauges, the runner's histograms
// and counters, the leader's Raft metrics and the blob byte counters move.
func TestMetricsMoveDuringAJob(t *testing.T) {
	m, fakes := startFakes(t, 3, func(i int, c *node.Config) { c.Topics = topics("t") })
	tok := m.Secret.ClusterToken()
	c := m.Client(0)
	scrapeAll := func() []map[string]*dto.MetricFamily {
		out := make([]map[string]*dto.MetricFamily, len(m.Nodes))
		for i, n := range m.Nodes {
			out[i] = scrapeMetrics(t, n, tok)
		}
		return out
	}

	// Only the cluster token scrapes.
	resp, err := http.Get(m.Nodes[0].URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("scrape without a token: got %s, want 401", resp.Status)
	}

	before := scrapeAll()
	for i, f := range before {
		if got := metricValue(f, "ourci_gossip_members"); got != 3 {
			t.Errorf("node%d: ourci_gossip_members = %v, want 3", i, got)
		}
		// A certificate derived at start lives ten years.
		exp := time.Unix(int64(metricValue(f, "ourci_tls_cert_expiry_timestamp_seconds")), 0)
		if left := time.Until(exp); left < 9*365*24*time.Hour || left > 11*365*24*time.Hour {
			t.Errorf("node%d: ourci_tls_cert_expiry_timestamp_seconds is %v away, want about ten years", i, left)
		}
		if _, ok := f["ourci_peer_refused_total"]; !ok {
			t.Errorf("node%d: no ourci_peer_refused_total", i)
		}
	}

	root := spawn(t, c, "t", "root")
	proc, at := procOf(t, fakes, root.Task)
	waitTask(t, c, root.Job, root.Task, "running")

	// A task token is refused (403), while the task runs.
	req, _ := http.NewRequest(http.MethodGet, m.Nodes[at].URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+specEnv(proc.Spec, "OURCI_TOKEN"))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("scrape with a task token: got %s, want 403", resp.Status)
		}
	}

	// Every replica shows the task running (once it caught up).
	for i, n := range m.Nodes {
		nodetest.WaitFor(t, waitLong, fmt.Sprintf("node%d shows the task running", i), func() (bool, string) {
			f := scrapeMetrics(t, n, tok)
			v := metricValue(f, "ourci_ledger_tasks", "topic", "t", "state", "running")
			return v == 1, fmt.Sprintf("running = %v", v)
		})
	}
	during := scrapeAll()
	runner := during[at]
	for _, h := range []string{"ourci_task_spawn_to_start_seconds", "ourci_task_wait_seconds", "ourci_tasks_started_total"} {
		b, d := metricValue(before[at], h, "topic", "t"), metricValue(runner, h, "topic", "t")
		if d != b+1 {
			t.Errorf("node%d (runs the task): %s went %v → %v, want +1", at, h, b, d)
		}
	}
	if got := metricValue(runner, "ourci_task_run_seconds", "topic", "t"); got != 0 {
		t.Errorf("run time observed before the task ended: %v", got)
	}

	// The leader committed the spawn, the assignment report and the
	// started report through its dispatcher; exactly one node leads.
	leader := m.Leader()
	if got := metricValue(during[leader], "ourci_raft_commit_seconds"); got <= metricValue(before[leader], "ourci_raft_commit_seconds") {
		t.Errorf("leader's ourci_raft_commit_seconds count did not grow: %v", got)
	}
	if got := metricValue(during[leader], "ourci_dispatch_batch_commands"); got == 0 {
		t.Error("leader's ourci_dispatch_batch_commands is empty")
	}
	leaders, gained := 0.0, 0.0
	for _, f := range during {
		leaders += metricValue(f, "ourci_raft_state", "state", "leader")
		gained += metricValue(f, "ourci_raft_leadership_changes_total", "change", "gained")
	}
	if leaders != 1 || gained < 1 {
		t.Errorf("ourci_raft_state{leader} summed %v (want 1), leadership gained %v (want ≥ 1)", leaders, gained)
	}

	// Blobs: put on one node, read through another.
	content := bytes.Repeat([]byte("metrics "), 50_000)
	put, get := at, (at+1)%len(m.Nodes)
	info, err := m.Client(put).PutBlob(testCtx(t), bytes.NewReader(content), url.Values{"job": {root.Job}, "name": {"out.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, waitLong, fmt.Sprintf("node%d's replica knows the blob", get), func() (bool, string) {
		return len(holders(m.Nodes[get], strings.TrimPrefix(info.Ref, "sha256:"))) > 0, "no holder yet"
	})
	rc, err := m.Client(get).GetBlob(testCtx(t), info.Ref, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("blob read back differs (%d bytes)", len(got))
	}
	size := float64(len(content))
	afterBlob := scrapeAll()
	if v := metricValue(afterBlob[put], "ourci_blob_stored_bytes"); v < size {
		t.Errorf("node%d stores %v blob bytes, want ≥ %v", put, v, size)
	}
	if v := metricValue(afterBlob[get], "ourci_blob_served_bytes_total", "to", "client") - metricValue(during[get], "ourci_blob_served_bytes_total", "to", "client"); v != size {
		t.Errorf("node%d served %v bytes to its client, want %v", get, v, size)
	}
	// The reading node fetched a copy (or replication had it pull one
	// first): either way the bytes crossed from a peer once per copy.
	fetched, served := 0.0, 0.0
	for i := range afterBlob {
		fetched += metricValue(afterBlob[i], "ourci_blob_fetched_bytes_total") - metricValue(during[i], "ourci_blob_fetched_bytes_total")
		served += metricValue(afterBlob[i], "ourci_blob_served_bytes_total", "to", "peer") - metricValue(during[i], "ourci_blob_served_bytes_total", "to", "peer")
	}
	if fetched < size || served < size {
		t.Errorf("blob bytes fetched from peers %v, served to peers %v; want both ≥ %v", fetched, served, size)
	}

	// The task ends: the gauges move from running to passed everywhere, the
	// runner observes the run time and counts the outcome.
	proc.Finish(0)
	d := m.WaitJob(0, root.Job, waitLong)
	checkJob(t, d, "closed", "passed", "")
	for i, n := range m.Nodes {
		nodetest.WaitFor(t, waitLong, fmt.Sprintf("node%d shows the task passed", i), func() (bool, string) {
			f := scrapeMetrics(t, n, tok)
			run, pass := metricValue(f, "ourci_ledger_tasks", "topic", "t", "state", "running"), metricValue(f, "ourci_ledger_tasks", "topic", "t", "state", "passed")
			closed := metricValue(f, "ourci_ledger_jobs", "state", "closed")
			return run == 0 && pass == 1 && closed == 1, fmt.Sprintf("running %v, passed %v, closed jobs %v", run, pass, closed)
		})
	}
	after := scrapeMetrics(t, m.Nodes[at], tok)
	if got := metricValue(after, "ourci_task_run_seconds", "topic", "t"); got != 1 {
		t.Errorf("node%d: ourci_task_run_seconds count %v, want 1", at, got)
	}
	if got := metricValue(after, "ourci_tasks_finished_total", "topic", "t", "outcome", "passed"); got != 1 {
		t.Errorf("node%d: ourci_tasks_finished_total{passed} %v, want 1", at, got)
	}
	if idx := metricValue(after, "ourci_ledger_applied_index"); idx < float64(d.Index) {
		t.Errorf("node%d: applied index %v below the job's %d", at, idx, d.Index)
	}
}
