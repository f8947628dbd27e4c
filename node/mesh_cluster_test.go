package node_test

import (
	"fmt"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// TestRestartKeepsLedger checks that a node closed and started again on
// its data directory (on new ports) keeps its replica, catches up, takes
// work again, and that every replica holds the same ledger.
func TestRestartKeepsLedger(t *testing.T) {
	configure := func(i int, c *node.Config) {
		c.Topics = topics("t")
		if i == 2 {
			c.Topics = topics("t", "only2")
		}
	}
	m := startMesh(t, 3, configure)
	c := m.Client(0)
	first := spawn(t, c, "t", "true")
	checkJob(t, m.WaitJob(0, first.Job, waitLong), "closed", "passed", "")

	cfg := m.Config(2) // same name and data dir; Peers: node0, which is up
	configure(2, &cfg)
	if err := m.Nodes[2].Close(); err != nil {
		t.Logf("close node2: %v", err)
	}
	n2 := m.Restart(2, cfg)
	m.WaitFor(waitLong, "restarted node2 to hold the first job, closed and passed", func() (bool, string) {
		var j raftfsm.Job
		n2.FSM().Read(func(s *raftfsm.State, _ uint64) {
			if p := s.Jobs[first.Job]; p != nil {
				j = *p.Clone()
			}
		})
		return j.State == raftfsm.JobClosed && j.Status == raftfsm.StatusPassed, fmt.Sprintf("got state %q status %q", j.State, j.Status)
	})
	m.WaitFor(waitLong, "every node to see node2 back as a voter", func() (bool, string) {
		for i, nd := range m.Nodes {
			st := nd.Status()
			for _, mb := range st.Members {
				if mb.Name == "node2" && (!mb.Alive || mb.Raft != "voter") {
					return false, fmt.Sprintf("node%d sees node2 alive %v raft %s", i, mb.Alive, mb.Raft)
				}
			}
			if len(st.Members) != 3 {
				return false, fmt.Sprintf("node%d sees %d members", i, len(st.Members))
			}
		}
		return true, ""
	})

	// It takes work again: only node2 subscribes to only2.
	second := spawn(t, c, "only2", "true")
	d := m.WaitJob(0, second.Job, waitLong)
	checkJob(t, d, "closed", "passed", "")
	if d.Tasks[0].Node != "node2" {
		t.Errorf("only2 task ran on %s, want node2", d.Tasks[0].Node)
	}
	sameLedger(t, m)
}

// sameLedger waits until every replica has applied the same index and
// checks that they then hold the same ledger.
func sameLedger(t *testing.T, m *nodetest.Mesh) {
	t.Helper()
	m.WaitFor(waitLong, "every replica at the same index", func() (bool, string) {
		idx := make([]uint64, len(m.Nodes))
		hash := make([][32]byte, len(m.Nodes))
		for i, nd := range m.Nodes {
			nd.FSM().Read(func(s *raftfsm.State, at uint64) { idx[i], hash[i] = at, s.Hash() })
		}
		for i := range idx {
			if idx[i] != idx[0] {
				return false, fmt.Sprintf("indexes %v", idx)
			}
		}
		for i := range hash {
			if hash[i] != hash[0] {
				t.Fatalf("ledger hash at index %d: node%d has %x, node0 has %x; want equal", idx[0], i, hash[i], hash[0])
			}
		}
		return true, ""
	})
}

// TestVotersAndNonVoters checks that a six-node mesh has five Raft voters
// and one non-voter, in every node's view.
func TestVotersAndNonVoters(t *testing.T) {
	m := startMesh(t, 6, nil)
	m.WaitFor(waitLong, "5 voters and 1 non-voter in every node's view", func() (bool, string) {
		for i, nd := range m.Nodes {
			st := nd.Status()
			roles := map[string]int{}
			for _, mb := range st.Members {
				roles[mb.Raft]++
			}
			if len(st.Members) != 6 || roles["voter"] != 5 || roles["nonvoter"] != 1 {
				return false, fmt.Sprintf("node%d sees %d members with roles %v", i, len(st.Members), roles)
			}
		}
		return true, ""
	})
	st := m.Nodes[m.Leader()].Status()
	for _, mb := range st.Members {
		if mb.Leader && mb.Raft != "voter" {
			t.Errorf("leader %s: got raft role %s, want voter", mb.Name, mb.Raft)
		}
	}
}
