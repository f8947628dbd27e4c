package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// startInternal starts n nodes from package node's own tests (nodetest
// imports node, so it cannot serve here).
func startInternal(t *testing.T, n int) []*Node {
	t.Helper()
	secret, dir := NewSecret(), t.TempDir()
	var nodes []*Node
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.Close()
		}
	})
	for i := 0; i < n; i++ {
		f := executor.NewFake()
		f.AutoExit(0)
		c := Config{
			Name: fmt.Sprintf("node%d", i), DataDir: filepath.Join(dir, fmt.Sprint(i)),
			Bind: "127.0.0.1:0", Raft: "127.0.0.1:0", HTTP: "127.0.0.1:0", Slots: 2, Secret: secret,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Executor: f, Topics: []Topic{{Name: "t"}},
		}
		if i > 0 {
			c.Peers = []string{nodes[0].GossipAddr()}
		}
		nd, err := Start(c)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	wait.For(t, 30*time.Second, "three voters and a leader, every replica caught up", func() (bool, string) {
		for _, nd := range nodes {
			st := nd.Status()
			if st.Leader == "" || st.Quorum.Voters != n || !nd.Ready() {
				return false, fmt.Sprintf("%s: leader %q quorum %+v ready %v", nd.Name(), st.Leader, st.Quorum, nd.Ready())
			}
		}
		return true, ""
	})
	return nodes
}

// Forward compatibility, on a real mesh: entries a newer binary writes (a
// spawn with fields this one does not know, a command type it does not know
// marked ignorable) apply on every replica without harm and alike; a
// command of a newer ledger schema is held back while a voter does not
// know it.
func TestNewerEntriesApplyAlike(t *testing.T) {
	nodes := startInternal(t, 3)
	var leader *Node
	for _, nd := range nodes {
		if nd.IsLeader() {
			leader = nd
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	spawn := append([]byte{byte(raftfsm.CmdSpawn)}, `{"new_job":{"deadline":"2030-01-01T00:00:00Z","merge_group":{"head":"abc"}},"job":"j-newer","task":"t-newer","topic":"t","args":["x"],"weight":9,"at":"2026-12-01T00:00:00Z"}`...)
	unknown := append([]byte{0x70 | 0x80}, `{"job":"j-newer","annotations":[{"file":"a.c","line":3}]}`...)
	for _, b := range [][]byte{spawn, unknown} {
		if err := leader.raft.Apply(b, 5*time.Second).Error(); err != nil {
			t.Fatalf("propose: %v", err)
		}
	}
	wait.For(t, 30*time.Second, "the newer job run and every replica equal", func() (bool, string) {
		var hashes []string
		for _, nd := range nodes {
			var st raftfsm.TaskState
			h := ""
			nd.fsm.Read(func(s *raftfsm.State, _ uint64) {
				if tk := s.Tasks["t-newer"]; tk != nil {
					st = tk.State
				}
				h = fmt.Sprintf("%x", s.Hash())
			})
			if st != raftfsm.TaskPassed {
				return false, fmt.Sprintf("%s: the newer task is %q", nd.Name(), st)
			}
			hashes = append(hashes, h)
		}
		return hashes[0] == hashes[1] && hashes[1] == hashes[2], fmt.Sprint(hashes)
	})

	err := leader.schemaReady(raftfsm.LedgerSchema + 1)
	if !errors.Is(err, ErrNotYet) {
		t.Fatalf("a command of the next schema: got %v, want ErrNotYet", err)
	}
	t.Logf("held back: %v", err)
	for _, nd := range nodes {
		nd.updateMeta(func(m *gossip.Meta) { m.Schema = raftfsm.LedgerSchema + 1 })
	}
	wait.For(t, 10*time.Second, "the voters to gossip the next schema", func() (bool, string) {
		err := leader.schemaReady(raftfsm.LedgerSchema + 1)
		return err == nil, fmt.Sprint(err)
	})
}
