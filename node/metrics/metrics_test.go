package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ourci/ourci/node/metrics"
	"github.com/ourci/ourci/raftfsm"
)

// ledger applies commands to a fresh FSM, one entry each.
type ledger struct {
	t     *testing.T
	fsm   *raftfsm.FSM
	index uint64
	at    time.Time
}

func (l *ledger) apply(c raftfsm.Command) {
	l.t.Helper()
	b, err := raftfsm.Encode(c)
	if err != nil {
		l.t.Fatal(err)
	}
	l.index++
	res, _ := l.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: l.index, Data: b}).(raftfsm.Result)
	if res.Err != nil {
		l.t.Fatalf("entry %d (%s): %v", l.index, c.Type, res.Err)
	}
}

func (l *ledger) spawn(job, task, topic string, newJob bool) {
	sp := &raftfsm.Spawn{Job: job, Task: task, Topic: topic, Args: []string{"true"}, Assign: "n1", At: l.at}
	if newJob {
		sp.NewJob = &raftfsm.NewJob{Deadline: l.at.Add(time.Hour)}
	} else {
		sp.Parent = job + "root"
	}
	l.apply(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp})
}

func (l *ledger) start(task string) {
	l.apply(raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: task, Attempt: 1, Node: "n1", At: l.at}})
}

func (l *ledger) finish(task string, st raftfsm.TaskState) {
	code := 0
	if st != raftfsm.TaskPassed {
		code = 1
	}
	l.apply(raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{Task: task, Attempt: 1, Node: "n1", State: st, ExitCode: &code, At: l.at}})
}

// scrape serves m's handler once and parses the text format.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the gauge or counter of fam whose labels include want, and
// whether there is one.
func value(fams map[string]*dto.MetricFamily, fam string, want map[string]string) (float64, bool) {
	f := fams[fam]
	if f == nil {
		return 0, false
	}
metrics:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue metrics
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestLedgerTasksByTopicAndState(t *testing.T) {
	l := &ledger{t: t, fsm: raftfsm.NewFSM(), at: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := metrics.New("n1", metrics.Sources{Ledger: l.fsm})
	tasks := func(topic, state string) float64 {
		t.Helper()
		v, _ := value(scrape(t, m), "ourci_ledger_tasks", map[string]string{"topic": topic, "state": state})
		return v
	}

	// Job a: root and a child, both running; job b: root assigned.
	l.spawn("a", "aroot", "build", true)
	l.spawn("a", "a1", "test", false)
	l.start("aroot")
	l.start("a1")
	l.spawn("b", "broot", "build", true)
	if got := tasks("build", "running"); got != 1 {
		t.Errorf("build running = %v, want 1", got)
	}
	if got := tasks("build", "assigned"); got != 1 {
		t.Errorf("build assigned = %v, want 1", got)
	}

	// Job a closes: its tasks move into the cached terminal totals.
	l.finish("a1", raftfsm.TaskFailed)
	l.finish("aroot", raftfsm.TaskPassed)
	for _, tc := range []struct {
		topic, state string
		want         float64
	}{{"build", "passed", 1}, {"test", "failed", 1}, {"build", "running", 0}, {"test", "running", 0}, {"build", "assigned", 1}} {
		if got := tasks(tc.topic, tc.state); got != tc.want {
			t.Errorf("%s %s = %v, want %v", tc.topic, tc.state, got, tc.want)
		}
	}
	// A later scrape neither counts the closed job again nor loses it.
	l.start("broot")
	l.finish("broot", raftfsm.TaskPassed)
	fams := scrape(t, m)
	if got, _ := value(fams, "ourci_ledger_tasks", map[string]string{"topic": "build", "state": "passed"}); got != 2 {
		t.Errorf("build passed = %v, want 2", got)
	}
	if got, _ := value(fams, "ourci_ledger_jobs", map[string]string{"state": "closed"}); got != 2 {
		t.Errorf("closed jobs = %v, want 2", got)
	}
	if got, _ := value(fams, "ourci_ledger_applied_index", nil); got != float64(l.index) {
		t.Errorf("applied index = %v, want %d", got, l.index)
	}
	if got := tasks("build", "passed"); got != 2 {
		t.Errorf("build passed on a second scrape = %v, want 2", got)
	}

	// Job history runs out for job a: the ledger forgets it and its tasks,
	// and so do the counts; a job opened after it is still counted.
	l.spawn("c", "croot", "build", true)
	l.apply(raftfsm.Command{Type: raftfsm.CmdExpire, Expire: &raftfsm.Expire{Jobs: []string{"a"}, At: l.at}})
	l.apply(raftfsm.Command{Type: raftfsm.CmdExpire, Expire: &raftfsm.Expire{Forget: []string{"a"}, At: l.at}})
	fams = scrape(t, m)
	for _, tc := range []struct {
		topic, state string
		want         float64
	}{{"build", "passed", 1}, {"test", "failed", 0}, {"build", "assigned", 1}} {
		if got, _ := value(fams, "ourci_ledger_tasks", map[string]string{"topic": tc.topic, "state": tc.state}); got != tc.want {
			t.Errorf("after forgetting job a: %s %s = %v, want %v", tc.topic, tc.state, got, tc.want)
		}
	}
	if got, _ := value(fams, "ourci_ledger_jobs", map[string]string{"state": "closed"}); got != 1 {
		t.Errorf("closed jobs after the forget = %v, want 1", got)
	}
}

func TestEventsAndSources(t *testing.T) {
	state := "Follower"
	usageErr := error(nil)
	m := metrics.New("n1", metrics.Sources{
		RaftState: func() string { return state },
		Members:   func() int { return 3 },
		BlobUsage: func() (int, int64, error) { return 2, 1234, usageErr },
	})
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.TaskStarted("build", created, created.Add(time.Millisecond), created.Add(3*time.Millisecond))
	m.TaskStarted("build", created, created.Add(-time.Second), created.Add(-time.Second)) // skew: counts as 0
	m.TaskRan("build", 2*time.Second)
	m.TaskFinished("build", "passed")
	m.RaftCommitted(2*time.Millisecond, 3)
	m.LeadershipChanged(true)
	m.BlobFetched(100)
	m.BlobServed("peer", 40)
	m.BlobServed("client", 7)
	m.LogChunksAnswered("ok")
	m.LogChunksAnswered("ok")
	m.LogChunksAnswered("gap")
	state = "Leader"

	fams := scrape(t, m)
	for _, tc := range []struct {
		fam    string
		labels map[string]string
		want   float64
	}{
		{"ourci_task_wait_seconds", map[string]string{"topic": "build"}, 2},
		{"ourci_task_spawn_to_start_seconds", map[string]string{"topic": "build"}, 2},
		{"ourci_task_run_seconds", map[string]string{"topic": "build"}, 1},
		{"ourci_tasks_started_total", map[string]string{"topic": "build"}, 2},
		{"ourci_tasks_finished_total", map[string]string{"topic": "build", "outcome": "passed"}, 1},
		{"ourci_raft_commit_seconds", nil, 1},
		{"ourci_dispatch_batch_commands", nil, 1},
		{"ourci_raft_leadership_changes_total", map[string]string{"change": "gained"}, 1},
		{"ourci_raft_leadership_changes_total", map[string]string{"change": "lost"}, 0},
		{"ourci_raft_state", map[string]string{"state": "leader"}, 1},
		{"ourci_raft_state", map[string]string{"state": "follower"}, 0},
		{"ourci_gossip_members", nil, 3},
		{"ourci_blob_stored_bytes", nil, 1234},
		{"ourci_blob_stored", nil, 2},
		{"ourci_blob_fetched_bytes_total", nil, 100},
		{"ourci_blob_served_bytes_total", map[string]string{"to": "peer"}, 40},
		{"ourci_blob_served_bytes_total", map[string]string{"to": "client"}, 7},
		{"ourci_task_log_chunk_posts_total", map[string]string{"answer": "ok"}, 2},
		{"ourci_task_log_chunk_posts_total", map[string]string{"answer": "gap"}, 1},
		{"ourci_task_log_chunk_posts_total", map[string]string{"answer": "refused"}, 0},
		{"ourci_node_info", map[string]string{"node": "n1"}, 1},
	} {
		got, ok := value(fams, tc.fam, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.fam, tc.labels, got, ok, tc.want)
		}
	}
	// The skewed observation landed in the lowest bucket, not below zero.
	h := fams["ourci_task_wait_seconds"].Metric[0].Histogram
	if h.GetSampleSum() < 0 {
		t.Errorf("wait sum %v < 0", h.GetSampleSum())
	}

	// A failing source leaves its metrics out; the rest are still served.
	usageErr = errors.New("disk gone")
	fams = scrape(t, m)
	if _, ok := value(fams, "ourci_blob_stored_bytes", nil); ok {
		t.Error("blob bytes served despite the store's error")
	}
	if _, ok := value(fams, "ourci_gossip_members", nil); !ok {
		t.Error("a failing blob store hid the other metrics")
	}
}

func TestNilMetricsIsANoOp(t *testing.T) {
	var m *metrics.Metrics
	now := time.Now()
	m.TaskStarted("x", now, now, now)
	m.TaskRan("x", time.Second)
	m.TaskFinished("x", "passed")
	m.RaftCommitted(time.Millisecond, 1)
	m.LeadershipChanged(false)
	m.BlobFetched(1)
	m.BlobServed("peer", 1)
	m.LogChunksAnswered("ok")
}

func TestLint(t *testing.T) {
	m := metrics.New("n1", metrics.Sources{Ledger: raftfsm.NewFSM(), Members: func() int { return 1 }})
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "ourci_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	// Separate registries: two nodes in one process do not collide.
	m2 := metrics.New("n2", metrics.Sources{})
	srv := httptest.NewServer(m2.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `ourci_node_info{node="n2"} 1`) {
		t.Errorf("second registry's output lacks its node: %.300s", b)
	}
}

// TestLedgerCountsMatchAFullScan drives a ledger through random spawns,
// starts, ends, cancels, expiries and forgets, scraping now and then, and
// compares the incrementally kept counts with a count of every task.
func TestLedgerCountsMatchAFullScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	l := &ledger{t: t, fsm: raftfsm.NewFSM(), at: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := metrics.New("n1", metrics.Sources{Ledger: l.fsm})
	topicsOf := []string{"build", "test", "deploy"}
	var openJobs, closedJobs, expired []string
	tasksOf := map[string][]string{}
	state := map[string]raftfsm.TaskState{}
	jobOf := map[string]string{}
	refresh := func() { // job states as the ledger has them now
		openJobs, closedJobs = openJobs[:0], closedJobs[:0]
		l.fsm.Read(func(s *raftfsm.State, _ uint64) {
			for _, id := range s.JobOrder {
				j := s.Jobs[id]
				switch {
				case j.State == raftfsm.JobOpen:
					openJobs = append(openJobs, id)
				case !j.Expired:
					closedJobs = append(closedJobs, id)
				}
			}
			for id, t := range s.Tasks {
				state[id] = t.State
			}
		})
	}
	nJobs, forgot := 0, 0
	for step := 0; step < 600; step++ {
		refresh()
		switch r := rng.IntN(10); {
		case r < 2 || len(openJobs) == 0:
			nJobs++
			job := fmt.Sprintf("j%03d", nJobs)
			root := job + "root"
			l.spawn(job, root, topicsOf[rng.IntN(3)], true)
			tasksOf[job], jobOf[root] = []string{root}, job
		case r < 4:
			job := openJobs[rng.IntN(len(openJobs))]
			id := fmt.Sprintf("%s-%d", job, len(tasksOf[job]))
			sp := &raftfsm.Spawn{Job: job, Task: id, Parent: job + "root", Topic: topicsOf[rng.IntN(3)], Args: []string{"x"}, Assign: "n1", At: l.at}
			l.apply(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp})
			tasksOf[job], jobOf[id] = append(tasksOf[job], id), job
		case r < 8:
			job := openJobs[rng.IntN(len(openJobs))]
			for _, id := range tasksOf[job] {
				switch state[id] {
				case raftfsm.TaskAssigned:
					l.start(id)
				case raftfsm.TaskRunning:
					l.finish(id, []raftfsm.TaskState{raftfsm.TaskPassed, raftfsm.TaskFailed, raftfsm.TaskTimedOut}[rng.IntN(3)])
				default:
					continue
				}
				break
			}
		case r < 9:
			job := openJobs[rng.IntN(len(openJobs))]
			l.apply(raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: job, Reason: raftfsm.ReasonCancelled, At: l.at}})
		default:
			if len(closedJobs) > 0 {
				job := closedJobs[rng.IntN(len(closedJobs))]
				l.apply(raftfsm.Command{Type: raftfsm.CmdExpire, Expire: &raftfsm.Expire{Jobs: []string{job}, At: l.at}})
				expired = append(expired, job)
			}
			if len(expired) > 0 && rng.IntN(2) == 0 {
				i := rng.IntN(len(expired))
				l.apply(raftfsm.Command{Type: raftfsm.CmdExpire, Expire: &raftfsm.Expire{Forget: []string{expired[i]}, At: l.at}})
				expired = slices.Delete(expired, i, i+1)
				forgot++
			}
		}
		if rng.IntN(5) != 0 {
			continue
		}
		want := map[string]float64{}
		open := 0
		l.fsm.Read(func(s *raftfsm.State, _ uint64) {
			for _, t := range s.Tasks {
				want[t.Topic+"/"+string(t.State)]++
			}
			open = len(s.OpenJobs())
		})
		fams := scrape(t, m)
		got := map[string]float64{}
		for _, mt := range fams["ourci_ledger_tasks"].GetMetric() {
			lb := map[string]string{}
			for _, lp := range mt.Label {
				lb[lp.GetName()] = lp.GetValue()
			}
			if v := mt.Gauge.GetValue(); v != 0 {
				got[lb["topic"]+"/"+lb["state"]] = v
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("step %d: collector counts %v, a full scan %v", step, got, want)
		}
		if v, _ := value(fams, "ourci_ledger_jobs", map[string]string{"state": "open"}); v != float64(open) {
			t.Fatalf("step %d: open jobs %v, want %d", step, v, open)
		}
	}
	if forgot < 5 || nJobs < 20 {
		t.Fatalf("the walk exercised too little: %d jobs, %d forgotten", nJobs, forgot)
	}
	t.Logf("%d jobs, %d forgotten", nJobs, forgot)
}
