package metrics_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ourci/ourci/node/metrics"
	"github.com/ourci/ourci/raftfsm"
)

// TestLedgerCountsAfterRestore: when the replica is restored from an older
// snapshot (an operator's restore), jobs counted closed may be open again;
// the counts follow the restored ledger, not the one scraped before.
func TestLedgerCountsAfterRestore(t *testing.T) {
	l := &ledger{t: t, fsm: raftfsm.NewFSM(), at: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := metrics.New("n1", metrics.Sources{Ledger: l.fsm})
	l.spawn("j1", "j1root", "build", true)
	l.start("j1root")
	var old bytes.Buffer
	l.fsm.Read(func(s *raftfsm.State, idx uint64) {
		if err := raftfsm.WriteSnapshot(&old, s, idx); err != nil {
			t.Fatal(err)
		}
	})
	l.finish("j1root", raftfsm.TaskPassed) // j1 closes
	l.spawn("j2", "j2root", "build", true)
	l.finish("j2root", raftfsm.TaskFailed) // j2 closes
	scrape(t, m)                           // both counted as closed
	if err := l.fsm.Restore(io.NopCloser(&old)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	fams := scrape(t, m)
	for _, tt := range []struct {
		fam    string
		labels map[string]string
		want   float64
	}{
		{"ourci_ledger_tasks", map[string]string{"topic": "build", "state": "running"}, 1},
		{"ourci_ledger_tasks", map[string]string{"topic": "build", "state": "passed"}, 0},
		{"ourci_ledger_tasks", map[string]string{"topic": "build", "state": "failed"}, 0},
		{"ourci_ledger_jobs", map[string]string{"state": "open"}, 1},
		{"ourci_ledger_jobs", map[string]string{"state": "closed"}, 0},
	} {
		if got, ok := value(fams, tt.fam, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v after the restore: got %v (found %v), want %v", tt.fam, tt.labels, got, ok, tt.want)
		}
	}
}
