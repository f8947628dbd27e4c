package nodetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/faults"
	"github.com/ourci/ourci/node/nodetest/ports"
	"github.com/ourci/ourci/node/nodetest/wait"
)

// Mesh is a running in-process mesh.
type Mesh struct {
	t      testing.TB
	Secret node.Secret
	Nodes  []*node.Node
	// Faults cuts links between the nodes (StartFaulty; nil after Start):
	// each node's gossip and peer addresses are registered under its name.
	Faults *faults.Net
	dir    string
	log    *slog.Logger
	// addrs holds node i's gossip, peer and HTTP addresses, on ports
	// reserved (package ports) at its first Config until Close.
	addrs map[int][3]string
}

// Configure adjusts node i's config before it starts.
type Configure func(i int, c *node.Config)

// Start brings up n nodes named node0..node{n-1}; node0 starts the mesh
// and the others join through it. It returns once every node sees all n
// members and a leader.
func Start(t testing.TB, n int, configure Configure) *Mesh {
	t.Helper()
	return start(t, n, configure, nil)
}

// StartFaulty is Start with every node's links under m.Faults, so the test
// can partition the mesh in-process (Partition, Heal): no root needed.
func StartFaulty(t testing.TB, n int, configure Configure) *Mesh {
	t.Helper()
	return start(t, n, configure, &faults.Net{})
}

func start(t testing.TB, n int, configure Configure, f *faults.Net) *Mesh {
	t.Helper()
	m := &Mesh{t: t, Secret: node.NewSecret(), Faults: f, dir: t.TempDir(), log: testLogger(t), addrs: map[int][3]string{}}
	t.Cleanup(m.Close)
	for i := 0; i < n; i++ {
		m.Add(configure)
	}
	m.WaitFor(30*time.Second, "every node sees the whole mesh and a leader", func() (bool, string) {
		for _, nd := range m.Nodes {
			st := nd.Status()
			if st.Leader == "" || len(st.Members) != len(m.Nodes) {
				return false, fmt.Sprintf("%s sees leader %q and %d members", nd.Name(), st.Leader, len(st.Members))
			}
		}
		return true, ""
	})
	m.WaitRaft(30 * time.Second)
	return m
}

// testLogger writes node logs to the test log only when -v or on failure
// would show them; set OURCI_TEST_LOG=1 to see them on stderr.
func testLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("OURCI_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Config returns the config node i would start with (before configure).
// Its ports are node i's for the mesh's life (see ports): Restart with
// Config(i) brings the node back on the addresses the mesh knows it by.
func (m *Mesh) Config(i int) node.Config {
	a := m.addresses(i)
	c := node.Config{
		Name:    "node" + strconv.Itoa(i),
		DataDir: filepath.Join(m.dir, "node"+strconv.Itoa(i)),
		Bind:    a[0], Raft: a[1], HTTP: a[2],
		Slots: 2, Secret: m.Secret, Logger: m.log.With("test_node", i),
		Grace: 2 * time.Second,
	}
	if len(m.Nodes) > 0 {
		c.Peers = []string{m.Nodes[0].GossipAddr()}
	}
	if m.Faults != nil {
		c.Faults = m.Faults
	}
	return c
}

// addresses returns node i's gossip, peer and HTTP addresses, reserving
// their ports at the first call. Ports the kernel picked (":0") would lie
// in its ephemeral range, where any socket may take one while the node is
// down (another test's listener, an outgoing connection), and the node
// could not come back on it.
func (m *Mesh) addresses(i int) [3]string {
	m.t.Helper()
	if a, ok := m.addrs[i]; ok {
		return a
	}
	p, err := ports.Reserve("127.0.0.1", 3)
	if err != nil {
		m.t.Fatalf("nodetest: ports for node %d: %v", i, err)
	}
	var a [3]string
	for k := range a {
		a[k] = "127.0.0.1:" + strconv.Itoa(p[k])
	}
	m.addrs[i] = a
	return a
}

// register names n's gossip and peer addresses in m.Faults.
func (m *Mesh) register(n *node.Node) {
	m.t.Helper()
	if m.Faults == nil {
		return
	}
	m.Faults.Name(n.GossipAddr(), n.Name())
	for _, mb := range n.Status().Members {
		if mb.Name == n.Name() {
			m.Faults.Name(mb.RaftAd, n.Name())
			return
		}
	}
	m.t.Fatalf("nodetest: %s does not list itself among its members", n.Name())
}

// Partition cuts every link between the nodes a and the nodes b (indexes
// in Nodes), both ways, until Heal. The mesh must come from StartFaulty.
func (m *Mesh) Partition(a, b []int) {
	m.t.Helper()
	if m.Faults == nil {
		m.t.Fatalf("nodetest: Partition on a mesh without faults (use StartFaulty)")
	}
	names := func(idx []int) []string {
		var s []string
		for _, i := range idx {
			s = append(s, m.Nodes[i].Name())
		}
		return s
	}
	m.Faults.Partition(names(a), names(b))
}

// Heal restores every link Partition cut.
func (m *Mesh) Heal() {
	m.t.Helper()
	if m.Faults == nil {
		m.t.Fatalf("nodetest: Heal on a mesh without faults (use StartFaulty)")
	}
	m.Faults.Heal()
}

// Add starts one more node that joins the mesh and returns it.
func (m *Mesh) Add(configure Configure) *node.Node {
	m.t.Helper()
	i := len(m.Nodes)
	c := m.Config(i)
	if configure != nil {
		configure(i, &c)
	}
	n := StartNode(m.t, c, restartWait)
	m.Nodes = append(m.Nodes, n)
	m.register(n)
	return n
}

// restartWait bounds how long StartNode waits for a taken port (scaled).
const restartWait = 30 * time.Second

// Restart starts a node again on the data directory of cfg (after Close
// or Kill), replacing Nodes[i]. Its ports may be busy for a moment (see
// StartNode).
func (m *Mesh) Restart(i int, cfg node.Config) *node.Node {
	m.t.Helper()
	n := StartNode(m.t, cfg, restartWait)
	m.Nodes[i] = n
	m.register(n)
	return n
}

// StartNode starts a node on cfg. A start that finds one of cfg's ports
// taken ("address already in use") is made again until timeout (scaled by
// OURCI_TEST_TIMEOUT_SCALE) passes, then the test fails naming the ports
// and the sockets holding them. Ports from Mesh.Config are reserved and
// so free; a config with ports the kernel picked once (":0", pinned for a
// restart) can find one taken by another socket meanwhile, most often the
// local end of an outgoing connection that closes soon. Any other error
// fails the test at once.
func StartNode(t testing.TB, cfg node.Config, timeout time.Duration) *node.Node {
	t.Helper()
	var n *node.Node
	tries := 0
	what := fmt.Sprintf("%s to start on its ports (gossip %s, peer %s, HTTP %s)", cfg.Name, cfg.Bind, cfg.Raft, cfg.HTTP)
	wait.For(t, timeout, what, func() (bool, string) {
		tries++
		var err error
		if n, err = node.Start(cfg); err == nil {
			return true, ""
		}
		if !ports.InUse(err) {
			t.Fatalf("nodetest: start %s: %v", cfg.Name, err)
		}
		return false, fmt.Sprintf("try %d: %v; %s", tries, err, holders(cfg.Bind, cfg.Raft, cfg.HTTP))
	})
	if tries > 1 {
		t.Logf("nodetest: %s started at its %s try: a port of it was taken for a while", cfg.Name, ordinal(tries))
	}
	return n
}

// holders describes the sockets on the ports of addrs (host:port).
func holders(addrs ...string) string {
	var out []string
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if n, _ := strconv.Atoi(p); err == nil && n > 0 {
			out = append(out, fmt.Sprintf("port %d: %s", n, ports.Holders(n)))
		}
	}
	return strings.Join(out, "; ")
}

func ordinal(n int) string {
	switch {
	case n%100/10 == 1:
		return strconv.Itoa(n) + "th"
	case n%10 == 1:
		return strconv.Itoa(n) + "st"
	case n%10 == 2:
		return strconv.Itoa(n) + "nd"
	case n%10 == 3:
		return strconv.Itoa(n) + "rd"
	}
	return strconv.Itoa(n) + "th"
}

// Close stops every node, then gives their ports back.
func (m *Mesh) Close() {
	for i := len(m.Nodes) - 1; i >= 0; i-- {
		m.Nodes[i].Close()
	}
	for i, a := range m.addrs {
		for _, addr := range a {
			_, p, _ := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(p)
			ports.Release(n)
		}
		delete(m.addrs, i)
	}
}

// Client returns an API client of node i holding the cluster token.
func (m *Mesh) Client(i int) *api.Client {
	return api.NewClient(m.Nodes[i].URL(), m.Secret.ClusterToken())
}

// Leader waits for a leader and returns its index in Nodes.
func (m *Mesh) Leader() int {
	m.t.Helper()
	idx := -1
	m.WaitFor(15*time.Second, "a leader", func() (bool, string) {
		for i, n := range m.Nodes {
			if n.IsLeader() {
				idx = i
				return true, ""
			}
		}
		return false, "no node leads"
	})
	return idx
}

// Follower returns the index of some node that does not lead.
func (m *Mesh) Follower() int {
	l := m.Leader()
	for i := range m.Nodes {
		if i != l {
			return i
		}
	}
	m.t.Fatalf("nodetest: a one-node mesh has no follower")
	return -1
}

// WaitFor polls cond until it holds or timeout passes; on timeout the test
// fails with what and cond's last explanation.
func (m *Mesh) WaitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	m.t.Helper()
	WaitFor(m.t, timeout, what, cond)
}

// WaitFor polls cond until it holds or timeout (scaled by
// OURCI_TEST_TIMEOUT_SCALE) passes: wait.For, kept for its callers.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	wait.For(t, timeout, what, cond)
}

// WaitJob follows a job on node i until it closes (deadline timeout,
// scaled by OURCI_TEST_TIMEOUT_SCALE).
func (m *Mesh) WaitJob(i int, job string, timeout time.Duration) api.JobDetail {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait.Scale(timeout))
	defer cancel()
	d, err := m.Client(i).WaitJob(ctx, job, nil)
	if err != nil {
		m.t.Fatalf("nodetest: job %s did not close within %s: %v", job, timeout, err)
	}
	return d
}

// Clock is a manual clock (give it to every node as Config.Clock) that also
// records the timers the daemon arms, so a test can move time only once the
// timer it means to fire is set. A timer armed after Advance counts from
// the new time; Armed and WaitArmed let a test see that.
type Clock struct {
	*clock.Manual
	mu     sync.Mutex
	timers []armed
}

type armed struct {
	set time.Time // the clock's reading when After was called
	d   time.Duration
}

// NewClock returns a Clock set to start.
func NewClock(start time.Time) *Clock {
	return &Clock{Manual: clock.NewManual(start)}
}

// After implements clock.Clock and records the timer.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := c.Manual.After(d)
	now := c.Now()
	c.mu.Lock()
	c.timers = append(c.timers, armed{set: now, d: d})
	c.mu.Unlock()
	return ch
}

// Armed counts the timers of exactly d armed while the clock read since or
// later.
func (c *Clock) Armed(d time.Duration, since time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, a := range c.timers {
		if a.d == d && !a.set.Before(since) {
			k++
		}
	}
	return k
}

// WaitArmed waits until a timer of exactly d has been armed at the clock's
// current reading.
func (c *Clock) WaitArmed(t testing.TB, timeout, d time.Duration) {
	t.Helper()
	now := c.Now()
	WaitFor(t, timeout, fmt.Sprintf("a %s timer on the test clock", d), func() (bool, string) {
		return c.Armed(d, now) > 0, "none armed yet"
	})
}

// WaitRaft waits until every node's Raft configuration holds every node of
// the mesh (as voter or non-voter) and all nodes name the same leader.
// Start returns as soon as gossip is complete, while the leader may still
// be adding voters (and, on a loaded machine, losing its quorum for a
// moment); a test that wants a settled mesh waits for this too.
func (m *Mesh) WaitRaft(timeout time.Duration) {
	m.t.Helper()
	m.WaitFor(timeout, "every node in every Raft configuration, voters promoted, one leader", func() (bool, string) {
		leader := ""
		for _, nd := range m.Nodes {
			st := nd.Status()
			if st.Leader == "" || (leader != "" && st.Leader != leader) {
				return false, fmt.Sprintf("%s sees leader %q (others %q)", nd.Name(), st.Leader, leader)
			}
			leader = st.Leader
			if len(st.Members) != len(m.Nodes) {
				return false, fmt.Sprintf("%s sees %d members", nd.Name(), len(st.Members))
			}
			voters := 0
			for _, mb := range st.Members {
				if mb.Raft != "voter" && mb.Raft != "nonvoter" {
					return false, fmt.Sprintf("%s sees %s with raft role %q", nd.Name(), mb.Name, mb.Raft)
				}
				if mb.Raft == "voter" {
					voters++
				}
			}
			if want := min(len(m.Nodes), 5); voters != want {
				return false, fmt.Sprintf("%s sees %d voters, want %d", nd.Name(), voters, want)
			}
		}
		return true, ""
	})
}
