package raftfsm

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// clusterDeadline bounds each wait on a cluster (scaled by
// OURCI_TEST_TIMEOUT_SCALE on slow machines).
var clusterDeadline = wait.Scale(30 * time.Second)

// syncBuffer collects raft's own log; it is shown only when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testNode struct {
	id  string
	dir string
	fsm *FSM
	r   *Raft

	close func() // closes the node once
}

// cluster owns the nodes of one test and a shared leader-observation channel.
type cluster struct {
	t     *testing.T
	logs  *syncBuffer
	obs   chan raft.Observation
	nodes []*testNode
	tune  func(*RaftConfig) // optional: adjusts every node's config
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, logs: &syncBuffer{}, obs: make(chan raft.Observation, 256)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("raft log:\n%s", c.logs.String())
		}
	})
	return c
}

// start opens a node on a fresh 127.0.0.1:0 listener in dir (a new temp
// dir when empty).
func (c *cluster) start(id, secret, dir string) *testNode {
	t := c.t
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	n := &testNode{id: id, dir: dir, fsm: NewFSM()}
	rc := RaftConfig{ID: id, Dir: dir, Listener: l, Secret: []byte(secret), LogOutput: c.logs}
	if c.tune != nil {
		c.tune(&rc)
	}
	n.r, err = OpenRaft(rc, n.fsm)
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
			if err := n.r.Close(); err != nil {
				t.Errorf("close %s: got error %v, want nil", id, err)
			}
		})
	}
	t.Cleanup(n.close)
	c.nodes = append(c.nodes, n)
	return n
}

// stop closes n now (its cleanup then does nothing).
func (c *cluster) stop(n *testNode) { n.close() }

// waitLeader waits until one of nodes is leader.
func (c *cluster) waitLeader(nodes ...*testNode) *testNode {
	t := c.t
	t.Helper()
	deadline := time.NewTimer(clusterDeadline)
	defer deadline.Stop()
	for {
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				return n
			}
		}
		select {
		case <-c.obs:
		case <-deadline.C:
			t.Fatalf("no leader within %v", clusterDeadline)
		}
	}
}

// waitIndex waits until n's FSM has applied index idx.
func waitIndex(t *testing.T, n *testNode, idx uint64) {
	t.Helper()
	waitIndexWithin(t, n, idx, clusterDeadline)
}

// waitIndexWithin is waitIndex with its own deadline.
func waitIndexWithin(t *testing.T, n *testNode, idx uint64, limit time.Duration) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		got, ch := n.fsm.Watch()
		if got >= idx {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("node %s: FSM index %d after %v, want %d", n.id, got, limit, idx)
		}
	}
}

// propose applies c through leader and returns its result and index.
func propose(t *testing.T, leader *testNode, c Command) (Result, uint64) {
	t.Helper()
	f := leader.r.Apply(mustEncode(t, c), 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("raft Apply %v: got error %v, want nil", c.Type, err)
	}
	r, ok := f.Response().(Result)
	if !ok {
		t.Fatalf("raft Apply %v: response %T, want Result", c.Type, f.Response())
	}
	return r, f.Index()
}

// leadershipChanged reports whether err says only that the entry met a
// leadership change: it may or may not have committed.
func leadershipChanged(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// proposeAcross is propose for long runs on a loaded machine: when the
// entry meets a leadership change it waits for the next leader among
// nodes, lets that leader apply everything before it (a Barrier) and, if
// applied says the entry is not in the ledger yet, proposes it again; so
// the entry lands exactly once. It returns the leader that took the entry
// and an index at which it is applied. Any other error fails the test, and
// so does an entry still not in after clusterDeadline.
func (c *cluster) proposeAcross(leader *testNode, nodes []*testNode, cmd Command, applied func(*State) bool) (*testNode, uint64) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(clusterDeadline)
	backoff, changes := 5*time.Millisecond, 0
	changed := func(err error, what string) {
		t.Helper()
		if !leadershipChanged(err) || time.Now().After(deadline) {
			t.Fatalf("raft %s %v on %s after %d leadership changes: got error %v, want nil", what, cmd.Type, leader.id, changes, err)
		}
		changes++
		t.Logf("raft %s %v on %s: %v; waiting for the next leader", what, cmd.Type, leader.id, err)
		time.Sleep(backoff) // a leader handing over answers at once
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	for {
		f := leader.r.Apply(mustEncode(t, cmd), 5*time.Second)
		err := f.Error()
		if err == nil {
			return leader, f.Index()
		}
		changed(err, "Apply")
		// Only once a leader has applied every entry of its log (a
		// Barrier of its own term commits them all) does the ledger say
		// whether the entry made it; until then nothing is proposed again.
		for {
			leader = c.waitLeader(nodes...)
			err := leader.r.Barrier(5 * time.Second).Error()
			if err == nil {
				break
			}
			changed(err, "Barrier before")
		}
		var done bool
		var idx uint64
		leader.fsm.Read(func(s *State, i uint64) { done, idx = applied(s), i })
		if done {
			return leader, idx
		}
	}
}

func TestRaftCluster(t *testing.T) {
	c := newCluster(t)
	var nodes []*testNode
	for _, id := range []string{"node-0", "node-1", "node-2"} {
		nodes = append(nodes, c.start(id, "the-cluster-secret", ""))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.r.Transport.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: got error %v, want nil", err)
	}
	leader := c.waitLeader(nodes...)

	root := spawnRoot("job-1", "root")
	if r, _ := propose(t, leader, root); r.Err != nil || r.Job != "job-1" || r.Task != "root" {
		t.Fatalf("spawn: got %+v, want job-1/root and no error", r)
	}
	if r, _ := propose(t, leader, assign(Assignment{Task: "root", Attempt: 1, Node: "node-1"})); r.Err != nil {
		t.Fatalf("assign: got error %v, want nil", r.Err)
	}
	r, last := propose(t, leader, finished("root", 1, "node-1", TaskPassed, intp(0)))
	if r.Err != nil {
		t.Fatalf("finish: got error %v, want nil", r.Err)
	}
	// A refusal travels back to the proposer as a value, not an error.
	if r, _ := propose(t, leader, spawnChild("job-1", "late", "root")); !errors.Is(r.Err, ErrJobClosed) {
		t.Fatalf("spawn into closed job: got error %v, want %v", r.Err, ErrJobClosed)
	}
	last++

	for _, n := range nodes {
		waitIndex(t, n, last)
	}
	wantHash, wantIdx := fsmHash(leader.fsm)
	for _, n := range nodes {
		h, idx := fsmHash(n.fsm)
		if h != wantHash || idx != wantIdx {
			t.Errorf("node %s: got index %d hash %x, want %d %x", n.id, idx, h[:6], wantIdx, wantHash[:6])
		}
		n.fsm.Read(func(s *State, _ uint64) {
			j := s.Jobs["job-1"]
			if j == nil || j.State != JobClosed || j.Status != StatusPassed {
				t.Errorf("node %s: job-1 got %+v, want closed and passed", n.id, j)
			}
			if tk := s.Tasks["root"]; tk == nil || tk.ExitCode == nil || *tk.ExitCode != 0 {
				t.Errorf("node %s: root got %+v, want exit code 0", n.id, tk)
			}
		})
	}

	// A node holding another secret cannot join: the leader adds it to
	// the configuration, but no entry ever reaches its FSM.
	bad := c.start("intruder", "some-other-secret", "")
	_, badCh := bad.fsm.Watch()
	if err := leader.r.AddVoter(raft.ServerID(bad.id), bad.r.Transport.LocalAddr(), 0, 10*time.Second).Error(); err != nil {
		t.Fatalf("AddVoter: got error %v, want nil (the three good nodes hold a quorum)", err)
	}
	_, next := propose(t, leader, spawnRoot("job-2", "root-2"))
	for _, n := range nodes {
		waitIndex(t, n, next)
	}
	// The one bounded wait for a negative: nothing arrives within 2s.
	select {
	case <-badCh:
		t.Fatalf("intruder FSM: got an entry (index %d), want none", bad.fsm.Index())
	case <-time.After(2 * time.Second):
	}
	if got := bad.fsm.Index(); got != 0 {
		t.Errorf("intruder FSM index: got %d, want 0", got)
	}
	if got := bad.r.LastIndex(); got != 0 {
		t.Errorf("intruder raft log last index: got %d, want 0", got)
	}
	if got := bad.r.State(); got == raft.Leader {
		t.Errorf("intruder raft state: got %v, want not leader", got)
	}
	// The good nodes still agree.
	wantHash, _ = fsmHash(leader.fsm)
	for _, n := range nodes {
		if h, _ := fsmHash(n.fsm); h != wantHash {
			t.Errorf("node %s after the intruder: hash %x, want %x", n.id, h[:6], wantHash[:6])
		}
	}
}

func TestHasState(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Join(dir, "missing")} {
		got, err := HasState(d)
		if err != nil || got {
			t.Fatalf("HasState(%s) before any raft: got (%v, %v), want (false, nil)", d, got, err)
		}
	}

	c := newCluster(t)
	n := c.start("solo", "secret", dir)
	if err := n.r.Bootstrap("solo"); err != nil {
		t.Fatalf("Bootstrap: got error %v, want nil", err)
	}
	c.waitLeader(n)
	propose(t, n, spawnRoot("job-1", "root"))
	_, idx := propose(t, n, assign(Assignment{Task: "root", Attempt: 1, Node: "solo"}))
	waitIndex(t, n, idx)
	wantHash, _ := fsmHash(n.fsm)
	c.stop(n)

	got, err := HasState(dir)
	if err != nil || !got {
		t.Fatalf("HasState after bootstrap: got (%v, %v), want (true, nil)", got, err)
	}

	// Reopened, the node keeps its mesh: Bootstrap again is harmless, and
	// the log replays into a fresh FSM.
	n2 := c.start("solo", "secret", dir)
	if err := n2.r.Bootstrap("solo"); err != nil {
		t.Fatalf("second Bootstrap: got error %v, want nil", err)
	}
	c.waitLeader(n2)
	waitIndex(t, n2, idx)
	if h, _ := fsmHash(n2.fsm); h != wantHash {
		t.Errorf("replayed FSM hash: got %x, want %x", h[:6], wantHash[:6])
	}
}

func TestOpenRaftNeedsSecret(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	r, err := OpenRaft(RaftConfig{ID: "x", Dir: t.TempDir(), Listener: l}, NewFSM())
	if err == nil {
		r.Close()
		t.Fatalf("OpenRaft without a secret: got nil error, want one")
	}
}

// TestReplicationIsNotPipelined: OpenRaft's transport refuses raft's
// pipelined replication (raft then sends one AppendEntries at a time per
// follower), which in raft v1.8 can deadlock a follower's replication and
// Shutdown after a failed or stale-term append.
func TestReplicationIsNotPipelined(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("node-a", "secret", ""), c.start("node-b", "secret", "")
	p, err := a.r.Transport.AppendEntriesPipeline(raft.ServerID(b.id), b.r.Transport.LocalAddr())
	if p != nil {
		p.Close()
	}
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: got (%v, %v), want ErrPipelineReplicationNotSupported", p != nil, err)
	}
}
