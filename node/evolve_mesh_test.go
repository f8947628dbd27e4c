package node

import (
	"context"
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

// A rolling upgrade's hold-back on the proposal path: while one voter
// gossips no ledger schema (a binary from before bcb261e, schema 1), the
// leader refuses with ErrNotYet, and keeps out of the log, every command
// of schema 2, whether by its type or by a field added to an older one;
// schema-1 commands go on. Once the voter gossips schema 2, the same
// commands apply on every replica. (No CLI or API call sends a schema-2
// command yet, so e2e's TestRollingUpgrade shows only the schemas the
// voters gossip.)
func TestNewerCommandsHeldBack(t *testing.T) {
	nodes := startInternal(t, 3)
	var leader, old *Node
	for _, nd := range nodes {
		if nd.IsLeader() && leader == nil {
			leader = nd
		} else {
			old = nd
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	old.updateMeta(func(m *gossip.Meta) { m.Schema = 0 })
	wait.For(t, 10*time.Second, "the leader to see a voter of schema 1", func() (bool, string) {
		err := leader.schemaReady(2)
		return errors.Is(err, ErrNotYet), fmt.Sprint(err)
	})
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	spawn := func(task string, priority int) raftfsm.Command {
		return raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{
			NewJob: &raftfsm.NewJob{Deadline: at.Add(time.Hour)}, Job: "j-" + task, Task: task,
			Topic: "t", Args: []string{"x"}, Priority: priority, At: at,
		}}
	}
	quarantine := raftfsm.Command{Type: raftfsm.CmdQuarantine, Quarantine: &raftfsm.Quarantine{Node: old.Name(), Topic: "t", Reason: "held back?", At: at}}
	inLedger := func(nd *Node, c raftfsm.Command) bool {
		found := false
		nd.fsm.Read(func(s *raftfsm.State, _ uint64) {
			switch c.Type {
			case raftfsm.CmdSpawn:
				found = s.Tasks[c.Spawn.Task] != nil
			case raftfsm.CmdQuarantine:
				r := s.Rigs[raftfsm.RigKey(c.Quarantine.Node, c.Quarantine.Topic)]
				found = r != nil && r.Quarantined
			}
		})
		return found
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := []struct {
		name string
		cmd  raftfsm.Command
	}{
		{"a command type of schema 2 (quarantine)", quarantine},
		{"a schema-2 field of a schema-1 command (a spawn's priority)", spawn("t-priority", 5)},
		{"a batch holding one", raftfsm.Command{Type: raftfsm.CmdBatch, Batch: []raftfsm.Command{spawn("t-batch", 0), quarantine}}},
	}
	for _, tt := range held {
		if _, err := leader.submit(ctx, tt.cmd); !errors.Is(err, ErrNotYet) {
			t.Errorf("%s with a voter of schema 1: got %v, want ErrNotYet", tt.name, err)
		}
	}
	if _, err := leader.submit(ctx, spawn("t-plain", 0)); err != nil {
		t.Fatalf("a schema-1 spawn with a voter of schema 1: %v", err)
	}
	wait.For(t, 10*time.Second, "the schema-1 spawn on every replica", func() (bool, string) {
		for _, nd := range nodes {
			if !inLedger(nd, spawn("t-plain", 0)) {
				return false, nd.Name() + " lacks it"
			}
		}
		return true, ""
	})
	for _, nd := range nodes {
		for _, tt := range held {
			for _, c := range append([]raftfsm.Command{tt.cmd}, tt.cmd.Batch...) {
				if c.Type != raftfsm.CmdBatch && inLedger(nd, c) {
					t.Errorf("%s: %s reached the ledger of %s while a voter ran schema 1", tt.name, c.Type, nd.Name())
				}
			}
		}
	}

	old.updateMeta(func(m *gossip.Meta) { m.Schema = raftfsm.LedgerSchema })
	wait.For(t, 10*time.Second, "every voter to gossip schema 2", func() (bool, string) {
		err := leader.schemaReady(2)
		return err == nil, fmt.Sprint(err)
	})
	for _, c := range []raftfsm.Command{quarantine, spawn("t-priority", 5)} {
		if _, err := leader.submit(ctx, c); err != nil {
			t.Fatalf("%s once every voter knows schema 2: %v", c.Type, err)
		}
	}
	wait.For(t, 10*time.Second, "the schema-2 commands on every replica, alike", func() (bool, string) {
		var hashes []string
		for _, nd := range nodes {
			for _, c := range []raftfsm.Command{quarantine, spawn("t-priority", 5)} {
				if !inLedger(nd, c) {
					return false, fmt.Sprintf("%s lacks the %s", nd.Name(), c.Type)
				}
			}
			nd.fsm.Read(func(s *raftfsm.State, _ uint64) { hashes = append(hashes, fmt.Sprintf("%x", s.Hash())) })
		}
		return hashes[0] == hashes[1] && hashes[1] == hashes[2], fmt.Sprint(hashes)
	})
}
