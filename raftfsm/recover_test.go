package raftfsm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/meshtls"
	"github.com/ourci/ourci/node/nodetest/ports"
)

// stoppedMesh runs a three-voter Raft whose server IDs are NAME@SUFFIX
// (each data directory holds its node-id file), proposes a few entries and
// stops every node. It returns the names, the directories and the ledger.
func stoppedMesh(t *testing.T) (names, dirs []string, hash [32]byte, idx uint64) {
	t.Helper()
	c := newCluster(t)
	// The survivors start again at the addresses the configuration names:
	// ports reserved outside the kernel's ephemeral range, so no other
	// socket takes one while the nodes are down (a ":0" port could go to
	// any outgoing connection).
	held, err := ports.Reserve("127.0.0.1", 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ports.Release(held...) })
	var nodes []*testNode
	for i := range 3 {
		name := fmt.Sprintf("node-%d", i)
		dir := t.TempDir()
		id := fmt.Sprintf("%s@%04x%04x", name, i, i)
		if err := os.WriteFile(filepath.Join(dir, NodeIDFile), []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		names, dirs = append(names, name), append(dirs, dir)
		nodes = append(nodes, c.startAt(name, id, dir, fmt.Sprintf("127.0.0.1:%d", held[i])))
	}
	var srv []raft.Server
	for _, n := range nodes {
		srv = append(srv, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.r.Transport.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: srv}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: got error %v, want nil", err)
	}
	leader := c.waitLeader(nodes...)
	for i := range 6 {
		_, idx = propose(t, leader, spawnRoot(fmt.Sprintf("job-%d", i), fmt.Sprintf("task-%d", i)))
	}
	for _, n := range nodes {
		waitIndex(t, n, idx)
	}
	hash, _ = fsmHash(leader.fsm)
	for _, n := range nodes {
		c.stop(n)
	}
	return names, dirs, hash, idx
}

// TestRecover: after the loss of the others, the survivors named as voters
// are the whole configuration; started again (alone, or together), they
// elect a leader, hold the whole ledger and take new entries.
func TestRecover(t *testing.T) {
	tests := []struct {
		name      string
		survivors []int    // nodes of the stopped mesh that recover and start
		voters    []string // --voter; none: each node alone
	}{
		{name: "one survivor, alone by default", survivors: []int{2}},
		{name: "one survivor, named", survivors: []int{0}, voters: []string{"node-0"}},
		{name: "two survivors, by name and by whole ID", survivors: []int{0, 1}, voters: []string{"node-0", "node-1@00010001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, dirs, hash, idx := stoppedMesh(t)
			var want []Server
			for _, v := range tt.voters {
				name, _, _ := strings.Cut(v, "@")
				i := slices.Index(names, name)
				want = append(want, Server{ID: fmt.Sprintf("%s@%04x%04x", name, i, i), Voter: true})
			}
			c := newCluster(t)
			var nodes []*testNode
			for _, i := range tt.survivors {
				id, err := NodeID(dirs[i], names[i])
				if err != nil || !strings.HasPrefix(id, names[i]+"@") {
					t.Fatalf("NodeID(%s): got (%q, %v), want %s@…", dirs[i], id, err, names[i])
				}
				rec, err := Recover(dirs[i], id, tt.voters)
				if err != nil {
					t.Fatalf("Recover(%s): got error %v, want nil", names[i], err)
				}
				w := want
				if len(tt.voters) == 0 {
					w = []Server{{ID: id, Voter: true}}
				}
				var got []Server
				for _, s := range rec.After {
					got = append(got, Server{ID: s.ID, Voter: s.Voter})
					if s.Address == "" {
						t.Errorf("Recover(%s): voter %s has no address", names[i], s.ID)
					}
				}
				if !slices.Equal(got, w) || len(rec.Before) != 3 || rec.Index < idx {
					t.Errorf("Recover(%s): got after %v (before %d servers, index %d), want %v (3 before, index at least %d)", names[i], got, len(rec.Before), rec.Index, w, idx)
				}
				// Raft listens where the configuration says it is.
				var addr string
				for _, s := range rec.After {
					if s.ID == id {
						addr = s.Address
					}
				}
				nodes = append(nodes, c.startAt(names[i], id, dirs[i], addr))
			}
			leader := c.waitLeader(nodes...)
			for _, n := range nodes {
				waitIndex(t, n, idx)
				if h, _ := fsmHash(n.fsm); h != hash {
					t.Errorf("%s after recovery: got ledger hash %x, want %x", n.id, h[:6], hash[:6])
				}
			}
			_, next := propose(t, leader, spawnRoot("job-after", "task-after"))
			for _, n := range nodes {
				waitIndex(t, n, next)
			}
		})
	}
}

// TestRecoverRefuses: Recover changes nothing when it cannot do what was
// asked, and says why.
func TestRecoverRefuses(t *testing.T) {
	names, dirs, _, _ := stoppedMesh(t)
	id0 := fmt.Sprintf("%s@%04x%04x", names[0], 0, 0)
	tests := []struct {
		name   string
		dir    func(t *testing.T) string
		id     string
		voters []string
		want   error
		msg    string
	}{
		{name: "a name not in the configuration", id: id0, voters: []string{"node-0", "node-9"}, want: ErrRecover, msg: `no server "node-9"`},
		{name: "this node not among the voters", id: id0, voters: []string{"node-1"}, want: ErrRecover, msg: "not among the voters"},
		{name: "this node not in the configuration", id: "stranger", want: ErrRecover, msg: `no server "stranger"`},
		{name: "a voter named twice", id: id0, voters: []string{"node-0", id0}, want: ErrRecover, msg: "named twice"},
		{name: "a prefix is not a name", id: id0, voters: []string{"node"}, want: ErrRecover, msg: `no server "node"`},
		{name: "an empty directory", dir: func(t *testing.T) string { return t.TempDir() }, id: id0, want: ErrRecover, msg: "no Raft state"},
		{name: "a damaged directory", id: id0, want: ErrDamaged, msg: "raft.db is damaged",
			dir: func(t *testing.T) string {
				d := copyDir(t, dirs[0])
				truncateFile(t, filepath.Join(d, raftDB), func(int64) int64 { return 100 })
				return d
			}},
		{name: "a directory in use", id: id0, want: ErrInUse, msg: "in use",
			dir: func(t *testing.T) string {
				d := copyDir(t, dirs[0])
				if _, _, err := openDir(t, d); err != nil {
					t.Fatalf("open the directory: %v", err)
				}
				return d
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, dirs[0])
			if tt.dir != nil {
				dir = tt.dir(t)
			}
			before, _ := os.ReadFile(filepath.Join(dir, raftDB))
			start := time.Now()
			_, err := Recover(dir, tt.id, tt.voters)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got error %v, want %v saying %q", err, tt.want, tt.msg)
			}
			if took := time.Since(start); took > lockWait+2*time.Second {
				t.Errorf("took %v, want it to fail within about %v", took, lockWait)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, raftDB)); tt.want != ErrInUse && string(after) != string(before) {
				t.Errorf("raft.db changed (%d bytes, %d before), want it untouched", len(after), len(before))
			}
		})
	}
}

// startAt is cluster.start for a node whose Raft server ID (id) is not
// its name (its mesh certificate's), on a listener at addr.
func (c *cluster) startAt(name, id, dir, addr string) *testNode {
	t := c.t
	t.Helper()
	peer, err := meshtls.Derive([]byte("secret"), name)
	if err != nil {
		t.Fatalf("mesh certificate of %s: %v", name, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s, %s's address: %v", addr, id, err)
	}
	n := &testNode{id: id, dir: dir, fsm: NewFSM()}
	n.r, err = OpenRaft(RaftConfig{ID: id, Dir: dir, Listener: l, TLS: peer, LogOutput: c.logs}, n.fsm)
	if err != nil {
		l.Close()
		t.Fatalf("OpenRaft(%s): got error %v, want nil", id, err)
	}
	obs := raft.NewObserver(c.obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.r.RegisterObserver(obs)
	var once sync.Once
	n.close = func() {
		once.Do(func() {
			n.r.DeregisterObserver(obs)
			n.r.Close()
		})
	}
	t.Cleanup(n.close)
	c.nodes = append(c.nodes, n)
	return n
}
