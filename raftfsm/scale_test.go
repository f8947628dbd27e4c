package raftfsm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// TestLedgerStaysBoundedAndRestores runs 100k tasks (20k under -race or
// -short) through a
// real 3-node Raft group with automatic snapshots: the log on disk is
// compacted to its trailing entries, and a node that joins afterwards
// restores from a snapshot into exactly the ledger the others hold.
func TestLedgerStaysBoundedAndRestores(t *testing.T) {
	tasks := 100_000
	if testing.Short() || raceBuild {
		tasks = 20_000
	}
	const per = 500 // commands per entry, as the leader batches them
	c := newCluster(t)
	c.tune = func(rc *RaftConfig) {
		rc.SnapshotThreshold, rc.TrailingLogs, rc.SnapshotInterval = 64, 64, 100*time.Millisecond
		rc.Timing = WAN // this test is about compaction, not elections under a loaded CPU
	}
	var nodes []*testNode
	for _, id := range []string{"n0", "n1", "n2"} {
		nodes = append(nodes, c.start(id, "secret", ""))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.r.Transport.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	leader := c.waitLeader(nodes...)
	start := time.Now()
	var last uint64
	for base := 0; base < tasks; base += per {
		var spawns, ends []Command
		for i := base; i < base+per && i < tasks; i++ {
			job, task := fmt.Sprintf("j%06d", i), fmt.Sprintf("t%06d", i)
			sp := spawnRoot(job, task)
			sp.Spawn.Assign = "n1"
			spawns = append(spawns, sp)
			ends = append(ends, finished(task, 1, "n1", TaskPassed, intp(0)))
		}
		// On a loaded machine the leader can miss its lease while
		// snapshotting; the entries then go through the next leader.
		lastTask := fmt.Sprintf("t%06d", min(base+per, tasks)-1)
		leader, _ = c.proposeAcross(leader, nodes, batch(spawns...), func(s *State) bool { return s.Tasks[lastTask] != nil })
		leader, last = c.proposeAcross(leader, nodes, batch(ends...), func(s *State) bool {
			return s.Tasks[lastTask] != nil && s.Tasks[lastTask].State == TaskPassed
		})
	}
	t.Logf("%d tasks through Raft in %s (%d entries)", tasks, time.Since(start).Round(time.Millisecond), last)
	for _, n := range nodes {
		waitIndex(t, n, last)
	}
	// Compaction runs in the background: wait until the leader's log keeps
	// only its trailing entries (plus what arrived since the snapshot).
	wait.For(t, 30*time.Second, "the leader's log compacted to its trailing entries", func() (bool, string) {
		first, err := leader.r.store.FirstIndex()
		if err != nil {
			return false, err.Error()
		}
		// Snapshots every 64 entries, 64 trailing entries kept: what stays
		// is at most two snapshot spans, and the start of the log is gone.
		if first > 1 && last-first <= 2*64+8 {
			t.Logf("log compacted: entries %d..%d on disk", first, last)
			return true, ""
		}
		return false, fmt.Sprintf("first index %d, last %d", first, last)
	})
	t.Logf("leader data dir: raft.db %s, snapshots %s", size(filepath.Join(leader.dir, "raft.db")), size(filepath.Join(leader.dir, "snapshots")))

	// A newcomer gets the ledger by snapshot (the log it would need is gone).
	late := c.start("n3", "secret", "")
	deadline := time.Now().Add(clusterDeadline)
	for backoff := 5 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		// AddVoter of a server already in the configuration is a no-op:
		// after a leadership change it is simply asked of the next leader.
		err := leader.r.AddVoter("n3", late.r.Transport.LocalAddr(), 0, 10*time.Second).Error()
		if err == nil {
			break
		}
		if !leadershipChanged(err) || time.Now().After(deadline) {
			t.Fatalf("AddVoter n3 on %s: %v", leader.id, err)
		}
		time.Sleep(backoff)
		leader = c.waitLeader(nodes...)
	}
	// It installs a snapshot of the whole ledger (about 90 MiB at 100k
	// tasks), which alone takes tens of seconds on a loaded machine.
	waitIndexWithin(t, late, last, wait.Scale(2*time.Minute))
	want, _ := fsmHash(leader.fsm)
	got, _ := fsmHash(late.fsm)
	if got != want {
		t.Errorf("restored newcomer: got hash %x, want %x", got[:6], want[:6])
	}
	late.fsm.Read(func(s *State, _ uint64) {
		if len(s.Tasks) != tasks || len(s.Jobs) != tasks {
			t.Errorf("restored newcomer: got %d tasks %d jobs, want %d each", len(s.Tasks), len(s.Jobs), tasks)
		}
	})
}

func size(path string) string {
	var total int64
	filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return fmt.Sprintf("%.1f MiB", float64(total)/(1<<20))
}

// TestProposeAcrossLeadershipTransfer checks the scale test's helper: a
// proposal made while leadership moves still lands, exactly once.
func TestProposeAcrossLeadershipTransfer(t *testing.T) {
	c := newCluster(t)
	var nodes []*testNode
	for _, id := range []string{"n0", "n1", "n2"} {
		nodes = append(nodes, c.start(id, "secret", ""))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.r.Transport.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	leader := c.waitLeader(nodes...)
	const rounds = 5
	for i := 0; i < rounds; i++ {
		task := fmt.Sprintf("t%d", i)
		sp := spawnRoot(fmt.Sprintf("j%d", i), task)
		moved := make(chan error, 1)
		go func(l *testNode) { moved <- l.r.LeadershipTransfer().Error() }(leader)
		leader, _ = c.proposeAcross(leader, nodes, sp, func(s *State) bool { return s.Tasks[task] != nil })
		if err := <-moved; err != nil {
			t.Logf("round %d: leadership transfer: %v", i, err)
		}
	}
	leader = c.waitLeader(nodes...)
	if err := leader.r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	leader.fsm.Read(func(s *State, _ uint64) {
		if len(s.Jobs) != rounds || len(s.Tasks) != rounds {
			t.Errorf("ledger holds %d jobs and %d tasks, want %d each", len(s.Jobs), len(s.Tasks), rounds)
		}
	})
}
