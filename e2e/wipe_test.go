package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestWipedVoterLosesNothing: the case that lost acknowledged spawns. B is
// cut off while the leader A and C acknowledge spawns (a quorum without
// B); C's data directory is wiped; A dies; B comes back, and so does C on
// its empty directory. Were C still the voter it was (same Raft ID, empty
// log), it would vote for B, whose log lacks those spawns, and the mesh
// would forget them. C comes back as a new server that cannot vote, so B
// cannot be elected alone; once A returns, every acknowledged spawn is in
// every replica.
func TestWipedVoterLosesNothing(t *testing.T) {
	t.Parallel()
	fn, err := setupFaultNet(t, "w")
	if err != nil {
		msg := "wiped-voter scenario NOT RUN: iptables is unusable here: " + err.Error()
		if os.Getenv("OURCI_REQUIRE_FAULTS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 4, ipPrefix: "127.0.2", ipBase: 8 * (os.Getpid() % 30), groups: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := m.leaderOf(m.all())
	if err != nil {
		t.Fatal(err)
	}
	b, c := (a+1)%3, (a+2)%3
	if err := fn.cut(m.nodes[b].ip, []string{m.nodes[a].ip, m.nodes[c].ip}); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s; %s cut off; %s will be wiped", m.nodes[a].name, m.nodes[b].name, m.nodes[c].name)

	var acks []spawnAck
	for k := 0; k < 12; k++ {
		label := fmt.Sprintf("wv%03d", k)
		job, task, err := m.cliSpawn(ctx, a, m.leafCmd(label, 0.1))
		if err != nil {
			t.Fatalf("spawn %d through the leader while %s is cut off: %v", k, m.nodes[b].name, err)
		}
		acks = append(acks, spawnAck{job: job, task: task, label: label, by: "the test", at: time.Now()})
	}
	m.kill(c)
	if err := m.wipe(c); err != nil {
		t.Fatal(err)
	}
	m.kill(a)
	if err := fn.heal(); err != nil {
		t.Fatal(err)
	}
	if err := m.start(c, m.gossipAddrs([]int{b})); err != nil {
		t.Fatal(err)
	}
	// B and the wiped C: no leader may come of them.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := m.status(ctx, b); err == nil && st.Leader != "" && st.Leader != m.nodes[a].name {
			t.Fatalf("%s and the wiped %s elected %s without %s, whose log holds the acknowledged spawns", m.nodes[b].name, m.nodes[c].name, st.Leader, m.nodes[a].name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := m.start(a, m.gossipAddrs([]int{b, c})); err != nil {
		t.Fatal(err)
	}
	m.mustBeHealthy(t, 90*time.Second)
	res := m.checkFaultInvariants(t, acks, faultCheckOpts{settle: 90 * time.Second})
	t.Logf("after the wipe and the return of %s: %d jobs, %d tasks, %d acknowledged spawns checked", m.nodes[a].name, res.jobs, res.tasks, res.acked)
}
