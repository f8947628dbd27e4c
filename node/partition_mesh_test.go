package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// TestPartitionedLeaderInProcess cuts the leader off from both followers
// (node/faults: Raft, gossip and peer HTTP, no root and no iptables): the
// followers elect a new leader and take spawns, the old leader takes none,
// and once the links heal every replica holds every acknowledged spawn,
// those from before the cut and those made during it.
func TestPartitionedLeaderInProcess(t *testing.T) {
	m := nodetest.StartFaulty(t, 3, func(i int, c *node.Config) {
		f := executor.NewFake()
		f.AutoExit(0)
		c.Executor, c.Topics = f, topics("t")
	})
	m.WaitRaft(waitLong)
	var acked []string // jobs whose spawn was acknowledged
	old := m.Leader()
	for range 3 {
		acked = append(acked, spawn(t, m.Client(old), "t", "true").Job)
	}
	var rest []int
	for i := range m.Nodes {
		if i != old {
			rest = append(rest, i)
		}
	}

	m.Partition([]int{old}, rest)
	t.Logf("cut %s off from the others: %s", m.Nodes[old].Name(), m.Faults)
	newLeader := -1
	wait.For(t, waitLong, "a new leader among the followers, the old one stepped down", func() (bool, string) {
		newLeader = -1
		for _, i := range rest {
			if m.Nodes[i].IsLeader() {
				newLeader = i
			}
		}
		switch {
		case newLeader < 0:
			return false, "no follower leads"
		case m.Nodes[old].IsLeader():
			return false, m.Nodes[old].Name() + " still leads"
		}
		return true, ""
	})
	t.Logf("%s leads the majority side", m.Nodes[newLeader].Name())
	for _, i := range rest { // through the leader and through the other follower
		acked = append(acked, spawn(t, m.Client(i), "t", "true").Job)
	}
	// The old leader has no quorum: a spawn through it is not acknowledged.
	ctx, cancel := context.WithTimeout(t.Context(), wait.Scale(3*time.Second))
	r, err := m.Client(old).Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"true"}, Key: key()})
	cancel()
	if err == nil {
		t.Fatalf("spawn through the cut-off %s: acknowledged job %s, want an error", m.Nodes[old].Name(), r.Job)
	}
	t.Logf("spawn through the cut-off %s: %v", m.Nodes[old].Name(), err)

	m.Heal()
	m.WaitRaft(waitLong)
	wait.For(t, waitLong, fmt.Sprintf("every replica to hold the %d acknowledged jobs, closed", len(acked)), func() (bool, string) {
		for _, nd := range m.Nodes {
			var missing []string
			nd.FSM().Read(func(s *raftfsm.State, _ uint64) {
				for _, id := range acked {
					if j := s.Jobs[id]; j == nil || j.State != raftfsm.JobClosed {
						missing = append(missing, id)
					}
				}
			})
			if len(missing) > 0 {
				return false, fmt.Sprintf("%s lacks (or has open) jobs %v", nd.Name(), missing)
			}
		}
		return true, ""
	})
}
