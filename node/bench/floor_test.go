package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ourci/ourci/raftfsm"
)

// TestFloorCommitsAcrossLeaderChanges moves the floor group's leadership
// away while entries are being committed: each commit still succeeds
// (under the next leader), and each entry is in the ledger exactly once.
func TestFloorCommitsAcrossLeaderChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Raft group")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := startRaftGroup(ctx, &run{dir: t.TempDir()}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	const rounds = 5
	for i := 0; i < rounds; i++ {
		l, err := g.waitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		transferred := make(chan error, 1)
		go func() { transferred <- l.LeadershipTransfer().Error() }()
		if _, err := g.commit(ctx, spawnEntry(), spawnEntry()); err != nil {
			t.Fatalf("round %d: commit across a leadership transfer: %v", i, err)
		}
		if err := <-transferred; err != nil {
			t.Logf("round %d: leadership transfer: %v", i, err)
		}
	}
	t.Logf("%d proposals met a leadership change and were made again", g.changes.Load())
	if _, err := g.commit(ctx); err != nil { // every entry applied on the leader
		t.Fatal(err)
	}
	l, _ := g.waitLeader(ctx)
	for i, rf := range g.rafts {
		if rf != l {
			continue
		}
		g.fsms[i].Read(func(s *raftfsm.State, _ uint64) {
			if len(s.Keys) != 2*rounds || len(s.Jobs) != 2*rounds {
				t.Errorf("ledger holds %d keys and %d jobs, want %d each (every entry once)", len(s.Keys), len(s.Jobs), 2*rounds)
			}
		})
	}
}
