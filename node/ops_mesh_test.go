package node_test

// Operations an operator runs on a mesh for months: restarts of every node,
// replaced disks, voters lost without a drain. Each test fails without the
// mechanism it names (catchup.go, identity.go, node/leader/autopilot.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// restartAll stops every node (Kill: as a crash; else Close) and starts
// them again on their data directories, with configure applied afresh.
func restartAll(t *testing.T, m *nodetest.Mesh, kill bool, configure nodetest.Configure) {
	t.Helper()
	// On the same addresses, as machines come back: the Raft configuration
	// names the peer ports. Config(i) has them (reserved for the mesh, so
	// no other socket took one meanwhile), and Restart waits out a port
	// still busy for a moment.
	cfgs := make([]node.Config, len(m.Nodes))
	for i := range m.Nodes {
		cfgs[i] = m.Config(i)
		cfgs[i].Peers = nil
		if configure != nil {
			configure(i, &cfgs[i])
		}
	}
	for _, n := range m.Nodes {
		if kill {
			n.Kill()
		} else {
			n.Close()
		}
	}
	for i := range m.Nodes {
		m.Restart(i, cfgs[i])
	}
	m.WaitFor(60*time.Second, "every restarted node caught up with the mesh", func() (bool, string) {
		for _, n := range m.Nodes {
			if !n.Ready() {
				return false, n.Name() + " is not ready"
			}
		}
		return true, ""
	})
}

// A clean restart of every node, with every file older than the 10-minute
// grace, deletes no blob and no task log of a job in retention; a stray copy
// the ledger does not know is still collected.
func TestRestartAllDeletesNothingInRetention(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	configure := func(i int, c *node.Config) {
		c.Clock, c.BlobRetention, c.JobHistory = clk, 7*24*time.Hour, 30*24*time.Hour
		c.JobTimeout, c.TaskTimeout = 90*24*time.Hour, 90*24*time.Hour
		c.Topics = []node.Topic{{Name: "build"}}
	}
	m := nodetest.Start(t, 3, configure)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The task holds its job open until the firmware is put.
	gate := filepath.Join(t.TempDir(), "uploaded")
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{
		"while [ ! -e " + gate + " ]; do sleep 0.05; done; echo firmware built; echo second line"}})
	if err != nil {
		t.Fatal(err)
	}
	fw := bytes.Repeat([]byte("esp8266 firmware "), 4096)
	info, err := m.Client(1).PutBlob(ctx, bytes.NewReader(fw), url.Values{"name": {"fw.tar.gz"}, "job": {res.Job}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := m.WaitJob(0, res.Job, time.Minute)
	if d.Job.Status != raftfsm.StatusPassed {
		t.Fatalf("job: got %s, want passed", d.Job.Status)
	}
	ran := d.Tasks[0].Node
	h, _ := blobs.ParseRef(info.Ref)
	m.WaitFor(30*time.Second, "the firmware on two nodes (replication)", func() (bool, string) {
		hs := holders(m.Nodes[0], string(h))
		return len(hs) >= 2, fmt.Sprintf("holders %v", hs)
	})

	// Every file is now older than the grace period, on the nodes' clock.
	clk.Advance(11 * time.Minute)
	restartAll(t, m, false, configure)

	// A stray copy (known to no ledger) proves collection ran after the
	// restart; the firmware and the log must survive it.
	stray, _, err := m.Nodes[0].BlobStore().Put(strings.NewReader("a copy nobody recorded"), "")
	if err != nil {
		t.Fatal(err)
	}
	// Collection runs when the ledger changes.
	canary, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(0, canary.Job, 30*time.Second)
	m.WaitFor(30*time.Second, "collection to delete the stray copy", func() (bool, string) {
		return !m.Nodes[0].BlobStore().Has(stray), "still there"
	})
	for i := range m.Nodes {
		rc, err := m.Client(i).GetBlob(ctx, "fw.tar.gz", res.Job)
		if err != nil {
			t.Fatalf("blob get fw.tar.gz through node%d after the restart: %v", i, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, fw) {
			t.Errorf("blob through node%d: got %d bytes (%v), want the %d bytes put", i, len(got), err, len(fw))
		}
		rc, err = m.Client(i).Log(ctx, res.Task, false)
		if err != nil {
			t.Fatalf("log of %s (ran on %s) through node%d after the restart: %v", res.Task, ran, i, err)
		}
		lg, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(lg), "firmware built\nsecond line\n") {
			t.Errorf("log through node%d: got %q, want the task's output", i, lg)
		}
	}
}

// kill -9 of every node after a closed job of 1,000 tasks, with a snapshot
// taken while many of them were assigned: the restarted mesh runs none of
// them again (neither on followers nor on the leader, whose runner waits
// for its barrier).
func TestRestartAllRunsNothingAgain(t *testing.T) {
	const children = 1000
	release := make(chan struct{})
	var held atomic.Int64
	fakes := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	for _, f := range fakes {
		f.OnStart(func(p *executor.FakeProcess) {
			if envOf(p.Spec.Env, "OURCI_TASK") != "" && len(p.Spec.Args) > 0 && p.Spec.Args[0] == "root" {
				return // the root finishes when the test says
			}
			// Blocking in Start holds the attempt at assigned: its start
			// report waits for Start to return.
			held.Add(1)
			<-release
			p.Finish(0)
		})
	}
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor, c.Slots = fakes[i], 64
		c.Topics = []node.Topic{{Name: "work"}}
		c.JobTimeout = 10 * time.Minute
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	var root *executor.FakeProcess
	m.WaitFor(20*time.Second, "the root task to start", func() (bool, string) {
		for _, f := range fakes {
			for _, p := range f.Procs() {
				if envOf(p.Spec.Env, "OURCI_TASK") == res.Task {
					root = p
					return true, ""
				}
			}
		}
		return false, "not started"
	})
	tc := api.NewClient(envOf(root.Spec.Env, "OURCI_NODE"), envOf(root.Spec.Env, "OURCI_TOKEN"))
	// Keyed spawns are safe to retry: across the leadership changes a
	// loaded 2-core machine sees under -race while a thousand land.
	tc.RetryFor = 2 * time.Minute
	var wg sync.WaitGroup
	var spawnErr atomic.Value
	next := atomic.Int64{}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > children {
					return
				}
				if _, err := tc.Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{fmt.Sprint("child-", k)}, Key: fmt.Sprint(k)}); err != nil {
					spawnErr.Store(err)
					return
				}
			}
		}()
	}
	m.WaitFor(60*time.Second, "150 children held at assigned", func() (bool, string) {
		return held.Load() >= 150, fmt.Sprintf("%d held", held.Load())
	})
	for _, n := range m.Nodes {
		if err := n.TakeSnapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.Name(), err)
		}
	}
	close(release)
	wg.Wait()
	if err, _ := spawnErr.Load().(error); err != nil {
		t.Fatalf("spawning the children: %v", err)
	}
	root.Finish(0)
	d := m.WaitJob(0, res.Job, 2*time.Minute)
	if d.Job.Status != raftfsm.StatusPassed || len(d.Tasks) != children+1 {
		t.Fatalf("job: got %s with %d tasks, want passed with %d", d.Job.Status, len(d.Tasks), children+1)
	}

	after := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	for _, f := range after {
		f.AutoExit(0)
	}
	restartAll(t, m, true, func(i int, c *node.Config) {
		c.Executor, c.Slots = after[i], 64
		c.Topics = []node.Topic{{Name: "work"}}
	})
	// A canary job passing on every node shows their runners have scanned
	// the caught-up ledger.
	for i := range m.Nodes {
		c, err := m.Client(i).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{"canary"}})
		if err != nil {
			t.Fatal(err)
		}
		if d := m.WaitJob(i, c.Job, time.Minute); d.Job.Status != raftfsm.StatusPassed {
			t.Fatalf("canary through node%d: got %s, want passed", i, d.Job.Status)
		}
	}
	var rerun []string
	for i, f := range after {
		for _, p := range f.Procs() {
			if len(p.Spec.Args) == 0 || p.Spec.Args[0] != "canary" {
				rerun = append(rerun, fmt.Sprintf("node%d ran %s %v attempt %s", i, envOf(p.Spec.Env, "OURCI_TASK"), p.Spec.Args, envOf(p.Spec.Env, "OURCI_ATTEMPT")))
			}
		}
	}
	if len(rerun) > 0 {
		t.Errorf("after the restart of every node, %d tasks of the closed job ran again, e.g. %s", len(rerun), strings.Join(rerun[:min(5, len(rerun))], "; "))
	}
}

// A node whose data directory was wiped comes back under its old name as a
// new Raft server: a non-voter until its replica caught up, the old ID
// removed; no acknowledged job is lost and the wiped node gets its work.
func TestWipedNodeRejoinsAsNewServer(t *testing.T) {
	fakes := []*executor.Fake{executor.NewFake(), executor.NewFake(), executor.NewFake()}
	for _, f := range fakes {
		f.AutoExit(0)
	}
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = fakes[i]
		c.Topics = []node.Topic{{Name: "work"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var jobs []string
	for k := 0; k < 20; k++ {
		res, err := m.Client(k%3).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{fmt.Sprint("before-", k)}})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, res.Job)
	}
	victim := m.Follower()
	oldID := m.Nodes[victim].RaftID()
	if !strings.HasPrefix(oldID, m.Nodes[victim].Name()+"@") {
		t.Fatalf("Raft ID of a new data directory: got %q, want %s@HEX", oldID, m.Nodes[victim].Name())
	}
	cfg := m.Config(victim)
	cfg.Executor, cfg.Topics = fakes[victim], []node.Topic{{Name: "work"}, {Name: "only-the-wiped"}}
	cfg.Peers = []string{m.Nodes[(victim+1)%3].GossipAddr()}
	m.Nodes[victim].Kill()
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	n := m.Restart(victim, cfg)
	if n.RaftID() == oldID || !strings.HasPrefix(n.RaftID(), n.Name()+"@") {
		t.Fatalf("Raft ID after the wipe: got %q, want a new %s@HEX (old %s)", n.RaftID(), n.Name(), oldID)
	}
	leader := m.Nodes[m.Leader()]
	// Until its replica caught up it must not vote.
	m.WaitFor(30*time.Second, "the old ID removed, the new one a voter", func() (bool, string) {
		var desc []string
		oldGone, newVoter := true, false
		for _, mb := range leader.Status().Members {
			desc = append(desc, fmt.Sprintf("%s/%s:%s", mb.Name, mb.ID, mb.Raft))
			if mb.ID == oldID && mb.Raft != "none" {
				oldGone = false
			}
			if mb.ID == n.RaftID() && mb.Raft == "voter" {
				newVoter = true
				if !n.Ready() && n.FSM().Index() == 0 {
					return false, "promoted to voter with an empty replica"
				}
			}
		}
		return oldGone && newVoter, strings.Join(desc, " ")
	})
	for _, id := range jobs {
		d, err := m.Client(victim).Job(ctx, id, 0, 0)
		if err != nil || d.Job.State != raftfsm.JobClosed {
			t.Errorf("job %s through the wiped node: got %+v, %v; want it closed", id, d.Job, err)
		}
	}
	// It takes work again.
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "only-the-wiped", Args: []string{"after"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.WaitJob(0, res.Job, 30*time.Second); d.Job.Status != raftfsm.StatusPassed || d.Tasks[0].Node != n.Name() {
		t.Errorf("a task only the wiped node serves: got %s on %s, want passed on %s", d.Job.Status, d.Tasks[0].Node, n.Name())
	}
}

// Seven nodes (five voters) lose three voters one after another, without a
// drain: each time the leader removes the dead voter and promotes a live
// non-voter, so the four survivors keep a quorum and run work.
func TestSevenNodesLoseThreeVoters(t *testing.T) {
	m := nodetest.Start(t, 7, func(i int, c *node.Config) {
		c.Executor = autoExit(0)
		c.Topics = []node.Topic{{Name: "work"}}
		c.DeadServerAfter = 2 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dead := map[int]bool{}
	for round := 1; round <= 3; round++ {
		// Lose a voter: the leader in the second round, another in the others.
		li := m.Leader()
		victim := -1
		for _, mb := range m.Nodes[li].Status().Members {
			if mb.Raft != "voter" || !mb.Alive {
				continue
			}
			k := indexOf(m, mb.Name)
			if (round == 2) == (k == li) && !dead[k] {
				victim = k
				break
			}
		}
		if victim < 0 {
			t.Fatalf("round %d: no voter to kill", round)
		}
		gone := m.Nodes[victim].RaftID()
		t.Logf("round %d: killing voter %s (leader %s)", round, gone, m.Nodes[li].Name())
		m.Nodes[victim].Kill()
		dead[victim] = true
		want := min(5, 7-len(dead))
		m.WaitFor(60*time.Second, fmt.Sprintf("round %d: %s removed, %d live voters again", round, gone, want), func() (bool, string) {
			for i, n := range m.Nodes {
				if dead[i] || !n.IsLeader() {
					continue
				}
				st := n.Status()
				for _, mb := range st.Members {
					if mb.ID == gone && mb.Raft != "none" {
						return false, fmt.Sprintf("%s still a %s; %+v", gone, mb.Raft, st.Quorum)
					}
				}
				if st.Quorum.Voters == want && st.Quorum.Alive == want {
					return true, ""
				}
				return false, fmt.Sprintf("%+v", st.Quorum)
			}
			return false, "no live leader"
		})
		live := -1
		for i := range m.Nodes {
			if !dead[i] {
				live = i
				break
			}
		}
		res, err := m.Client(live).Spawn(ctx, api.SpawnRequest{Topic: "work", Args: []string{fmt.Sprint("round-", round)}})
		if err != nil {
			t.Fatalf("round %d: spawn: %v", round, err)
		}
		if d := m.WaitJob(live, res.Job, 30*time.Second); d.Job.Status != raftfsm.StatusPassed {
			t.Fatalf("round %d: job %s", round, d.Job.Status)
		}
	}
}

func indexOf(m *nodetest.Mesh, name string) int {
	for i, n := range m.Nodes {
		if n.Name() == name {
			return i
		}
	}
	return -1
}

func autoExit(code int) *executor.Fake {
	f := executor.NewFake()
	f.AutoExit(code)
	return f
}

// A task whose output passes --max-log-bytes keeps running; its log ends
// with a marker, and it passes.
func TestTaskLogCap(t *testing.T) {
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.Topics = []node.Topic{{Name: "build"}}
		c.MaxLogBytes = 10000
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"head -c 50000 /dev/zero | tr '\\0' x; echo; echo still running >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.WaitJob(0, res.Job, 30*time.Second); d.Job.Status != raftfsm.StatusPassed {
		t.Fatalf("job: got %s, want passed", d.Job.Status)
	}
	rc, err := m.Client(0).Log(ctx, res.Task, false)
	if err != nil {
		t.Fatal(err)
	}
	lg, _ := io.ReadAll(rc)
	rc.Close()
	lines := strings.Split(string(lg), "\n")
	if len(lines) < 4 || lines[1] != strings.Repeat("x", 10000) {
		t.Fatalf("want the first 10000 bytes of output on the second line, got:\n%s", strings.ReplaceAll(string(lg), strings.Repeat("x", 100), "(100 x)"))
	}
	rest := strings.Join(lines[2:], "\n")
	for _, want := range []string{"--max-log-bytes", "the rest of it is dropped", "exit code 0"} {
		if !strings.Contains(rest, want) {
			t.Errorf("log lacks %q after the output:\n%s", want, rest)
		}
	}
	if strings.Contains(rest, "still running") || strings.Contains(rest, "xx") {
		t.Errorf("output past the cap was kept:\n%s", rest)
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// An operator lists the Raft servers, sees a dead voter and the quorum one
// failure away, and removes it by name; live members and the leader are
// refused.
func TestOperatorRaftPeers(t *testing.T) {
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = autoExit(0)
		c.DeadServerAfter = time.Hour // the autopilot leaves it to the operator
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	li := m.Leader()
	victim := (li + 1) % 3
	live := (li + 2) % 3
	m.Nodes[victim].Kill()
	c := m.Client(live) // through a follower: relayed to the leader
	m.WaitFor(20*time.Second, "the leader to see the dead voter", func() (bool, string) {
		p, err := c.RaftPeers(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, pr := range p.Peers {
			if pr.Name == m.Nodes[victim].Name() {
				return !pr.Alive && pr.Suffrage == "voter" && p.Quorum.Tolerates == 0 && strings.Contains(p.Quorum.Warning, "one failure away"),
					fmt.Sprintf("%+v quorum %+v", pr, p.Quorum)
			}
		}
		return false, "not listed"
	})
	var se *api.StatusError
	if _, err := c.RemovePeer(ctx, m.Nodes[live].Name(), false); !errors.As(err, &se) || se.HTTPStatus != 409 || !strings.Contains(err.Error(), "drain") {
		t.Errorf("remove a live member: got %v, want 409 pointing to drain", err)
	}
	if _, err := c.RemovePeer(ctx, m.Nodes[li].Name(), false); !errors.As(err, &se) || se.HTTPStatus != 409 {
		t.Errorf("remove the leader: got %v, want 409", err)
	}
	if _, err := c.RemovePeer(ctx, "nobody", false); !errors.As(err, &se) || se.HTTPStatus != 404 {
		t.Errorf("remove an unknown name: got %v, want 404", err)
	}
	out, err := c.RemovePeer(ctx, m.Nodes[victim].Name(), false)
	if err != nil || len(out.Removed) != 1 || out.Removed[0] != m.Nodes[victim].RaftID() {
		t.Fatalf("remove the dead voter: got %+v, %v; want %s removed", out, err, m.Nodes[victim].RaftID())
	}
	p, err := c.RaftPeers(ctx)
	if err != nil || len(p.Peers) != 2 || p.Quorum.Voters != 2 || p.Quorum.Alive != 2 {
		t.Errorf("after the removal: got %+v, %v; want two live voters", p, err)
	}
}
