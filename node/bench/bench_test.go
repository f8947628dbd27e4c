package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// tiny is the smallest run that still exercises every measure.
func tiny(t testing.TB) Options {
	o := Options{
		Dir: t.TempDir(), Spawns: 10, Tasks: 60, Spawners: 8, Slots: 8, Kills: 1, WorkerKills: 1,
		GossipSizes: []int{3}, GossipChanges: 3, BlobMiB: 1, SmallBlobs: 30, BlobWorkers: 4,
		LedgerTasks: 2000, JobTasks: 100, LogMiB: 1,
		// A guard against a hang, not a target: idle the run takes 15 s,
		// on a loaded CI machine several times that.
		Timeout: wait.Scale(5 * time.Minute).Seconds(),
		// Raft's default WAN timings (1 s heartbeat and election): the LAN
		// ones (200 ms) cannot hold a leader on a 2-core machine running
		// the race-enabled suite, where a heartbeat or a TLS handshake is
		// often later than that; the mesh then changes leaders over and
		// over and neither settles nor finishes a task in time. This test
		// covers the harness, not the targets: the figures need not be
		// the LAN ones.
		RaftTiming: &raftfsm.WAN,
	}
	if testing.Verbose() {
		o.Progress = os.Stderr
	}
	return o
}

// TestBenchQuick runs the whole harness at tiny sizes and checks that every
// measure produced a sane number, so CI covers the harness code. Targets
// are not checked: the sizes are too small and CI machines too noisy.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh and kills nodes")
	}
	start := time.Now()
	o := tiny(t)
	rep, err := Run(context.Background(), o)
	if err != nil {
		// The nodes' own logs say why a wait ran out (elections, refused
		// joins, failed promotions); the temp dir goes with the test.
		t.Logf("last lines of the nodes' log:\n%s", tail(filepath.Join(o.Dir, "nodes.log"), 80))
		t.Fatal(err)
	}
	t.Logf("harness ran in %s", time.Since(start).Round(time.Millisecond))
	var tbl bytes.Buffer
	rep.WriteTable(&tbl)
	t.Log("\n" + tbl.String())

	bounds := map[string][2]float64{ // key → [min, max], in the row's unit
		"spawn_start_p50_ms":        {-50, 1000},
		"spawn_start_p99_ms":        {-50, 5000},
		"spawn_call_start_p50_ms":   {0.01, 2000},
		"throughput_tasks_per_s":    {1, 1e6},
		"loaded_spawn_start_p99_ms": {-100, 10000},
		"worker_reassign_max_ms":    {1, 30000},
		"failover_p50_ms":           {1, 30000},
		"failover_max_ms":           {1, 30000},
		"big_blob_mibps":            {0.1, 1e6},
		"small_blobs_per_s":         {1, 1e6},
		"log_mibps_one":             {0.01, 1e5},
		"log_mibps_many":            {0.01, 1e5},
		"log_lines_per_s":           {1, 1e9},
		"gossip_n3_p50_ms":          {0.001, 15000},
		"gossip_n3_max_ms":          {0.001, 15000},
		"ledger_heap_mib":           {0.01, 1e4},
		"ledger_snapshot_mib":       {0.01, 1e4},
		"job_status_p50_ms":         {0.0001, 1e4},
	}
	seen := map[string]bool{}
	for _, row := range rep.Rows {
		b, ok := bounds[row.Key]
		if !ok {
			t.Errorf("unexpected row %q (%s)", row.Key, row.Measure)
			continue
		}
		seen[row.Key] = true
		if row.OurCI < b[0] || row.OurCI > b[1] {
			t.Errorf("%s = %v %s, want within [%v, %v]", row.Key, row.OurCI, row.Unit, b[0], b[1])
		}
		if row.Floor != nil && *row.Floor <= 0 {
			t.Errorf("%s: floor %v, want > 0", row.Key, *row.Floor)
		}
		if row.Result != "pass" && row.Result != "fail" && row.Result != "info" {
			t.Errorf("%s: result %q", row.Key, row.Result)
		}
	}
	for k := range bounds {
		if !seen[k] {
			t.Errorf("no row %s", k)
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		SchemaVersion int   `json:"schema_version"`
		Rows          []Row `json:"rows"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.SchemaVersion != SchemaVersion || len(back.Rows) != len(rep.Rows) {
		t.Errorf("JSON report: %v, schema %d, %d rows", err, back.SchemaVersion, len(back.Rows))
	}
	if !strings.Contains(tbl.String(), "spawn→start p50, idle") {
		t.Errorf("table lacks the spawn row:\n%s", tbl.String())
	}
}

// BenchmarkBench runs each measure at the --quick sizes and reports its
// rows as metrics:
//
//	go test -run '^$' -bench . ./node/bench/
//	go test -run '^$' -bench Bench/spawn ./node/bench/
func BenchmarkBench(b *testing.B) {
	for _, m := range AllMeasures {
		b.Run(m, func(b *testing.B) {
			var rep *Report
			for i := 0; i < b.N; i++ {
				o := Quick()
				o.Dir, o.Only = b.TempDir(), []string{m}
				var err error
				rep, err = Run(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
			}
			for _, row := range rep.Rows {
				unit := row.Key
				b.ReportMetric(row.OurCI, unit)
				if row.Floor != nil {
					b.ReportMetric(*row.Floor, "floor_"+unit)
				}
			}
			b.ReportMetric(0, "ns/op") // a run is not an op: hide the default
			var tbl bytes.Buffer
			rep.WriteTable(&tbl)
			b.Log("\n" + tbl.String())
		})
	}
}

// tail returns the last n lines of the file at path (or why it cannot).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestReasonsTellWhatHeldLastAndBefore(t *testing.T) {
	for _, tt := range []struct {
		name  string
		notes []string
		want  string // with every duration written as D
	}{
		{"none", nil, "no reason seen yet"},
		{"one", []string{"a", "a"}, "a (for the last D)"},
		{"latest first", []string{"a", "b", "b", "c"}, "c (for the last D); before that: b (D); a (D)"},
		{"back to an earlier one", []string{"a", "b", "a"}, "a (for the last D, 2 times); before that: b (D)"},
		{"only the last few", []string{"1", "2", "3", "4", "5", "6", "7", "8"}, "8 (for the last D); before that: 7 (D); 6 (D); 5 (D); 4 (D); 3 (D)"},
	} {
		var h reasons
		for _, n := range tt.notes {
			h.note(n)
		}
		got := durations.ReplaceAllString(h.String(), "D")
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

var durations = regexp.MustCompile(`[0-9.]+(ns|µs|ms|s)\b`)

// A settle that runs out says how long it waited and what held, for how
// long; an invalid OURCI_TEST_TIMEOUT_SCALE is refused before any wait.
func TestSettleTimeoutSaysWhy(t *testing.T) {
	m := &mesh{cfgs: []node.Config{{Name: "node0"}}, nodes: []*node.Node{nil}}
	t.Setenv(wait.Env, "2")
	err := m.settle(context.Background(), 50*time.Millisecond)
	if !errors.Is(err, errTimeout) {
		t.Fatalf("settle on a mesh whose node is down: got %v, want errTimeout", err)
	}
	if want := regexp.MustCompile(`mesh did not settle in 100ms: node0 is down \(for the last [0-9.]+m?s\)$`); !want.MatchString(err.Error()) {
		t.Errorf("got %q, want it to match %s", err, want)
	}
	t.Setenv(wait.Env, "fast")
	if _, err := Run(context.Background(), Options{Dir: t.TempDir(), Only: []string{MLedger}}); err == nil || !strings.Contains(err.Error(), wait.Env) {
		t.Errorf("Run with %s=fast: got %v, want an error naming the variable", wait.Env, err)
	}
}
