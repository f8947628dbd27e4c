package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/meshtls"
	"github.com/ourci/ourci/raftfsm"
)

// mesh is an in-process mesh of real nodes on 127.0.0.1; the kernel
// picks each node's ports at its first start and a killed node comes back
// at the same addresses.
type mesh struct {
	r       *run
	secret  node.Secret
	cfgs    []node.Config
	topics  [][]node.Topic // each node's own offer, as configured
	nodes   []*node.Node   // nil while killed
	started []time.Time
	http    *http.Client
	// peerHTTP calls the nodes' peer API (mutual TLS on the Raft port)
	// with a node certificate of the mesh's CA, as the leader does.
	peerHTTP *http.Client
}

// startMesh starts n nodes: node0 opens the mesh, the others join it. Each
// subscribes to "bench" and to its own topic "bench-NAME".
func startMesh(ctx context.Context, r *run, n int) (*mesh, error) {
	m := &mesh{r: r, secret: node.NewSecret(), http: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
	}}}
	self, err := meshtls.Derive(m.secret.TLSSeed(), "bench")
	if err != nil {
		return nil, err
	}
	m.peerHTTP = &http.Client{Transport: &http.Transport{
		TLSClientConfig: self.ClientConfig(meshtls.ProtoHTTP), MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute,
	}}
	for i := 0; i < n; i++ {
		name := "node" + strconv.Itoa(i)
		topics := []node.Topic{{Name: "bench"}, {Name: "bench-" + name}}
		// Port 0: the kernel picks each port as the node binds it, so no
		// other process can take it in between; start pins the ports the
		// node got for its restarts.
		cfg := node.Config{
			Name: name, DataDir: filepath.Join(r.dir, name),
			Bind: "127.0.0.1:0", Raft: "127.0.0.1:0", HTTP: "127.0.0.1:0", Topics: topics, Slots: r.o.Slots,
			Secret: m.secret, Logger: r.nodeLg.With("bench_node", name), Grace: 2 * time.Second,
			BlobReplicas: 1, RaftTiming: r.o.raftTiming(), GossipProfile: r.o.gossipProfile(),
		}
		m.cfgs = append(m.cfgs, cfg)
		m.topics = append(m.topics, topics)
		m.nodes = append(m.nodes, nil)
		m.started = append(m.started, time.Time{})
	}
	for i := range m.cfgs {
		if err := m.start(i); err != nil {
			m.close()
			return nil, err
		}
	}
	if err := m.settle(ctx, 60*time.Second); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func (m *mesh) start(i int) error {
	cfg := m.cfgs[i]
	first := m.started[i] == (time.Time{})
	switch {
	case first && i > 0:
		cfg.Peers = []string{m.cfgs[0].Bind}
	case !first:
		// A restart: join whoever is up (it also remembers its peers).
		cfg.Peers = nil
		for k, c := range m.cfgs {
			if k != i && m.nodes[k] != nil {
				cfg.Peers = append(cfg.Peers, c.Bind)
			}
		}
	}
	nd, err := node.Start(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	m.nodes[i] = nd
	m.started[i] = time.Now()
	if first {
		// A killed node comes back at the same addresses.
		c := &m.cfgs[i]
		c.Bind, c.HTTP = nd.GossipAddr(), strings.TrimPrefix(nd.URL(), "http://")
		for _, mb := range nd.Status().Members {
			if mb.Name == cfg.Name {
				c.Raft = mb.RaftAd
			}
		}
		if c.Raft == "" || c.Raft == "127.0.0.1:0" {
			return fmt.Errorf("start %s: its own member entry names no raft address", cfg.Name)
		}
	}
	return nil
}

// kill stops node i abruptly (node.Kill: sockets closed, nothing handed
// over, nobody told) and returns how long Kill took.
func (m *mesh) kill(i int) time.Duration {
	t0 := time.Now()
	m.nodes[i].Kill()
	m.nodes[i] = nil
	return time.Since(t0)
}

func (m *mesh) close() {
	var wg sync.WaitGroup
	for i, nd := range m.nodes {
		if nd == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd.Close()
		}()
		m.nodes[i] = nil
	}
	wg.Wait()
	// Nothing of the mesh outlives it (the ledger measure reads the heap).
	m.http.CloseIdleConnections()
	m.peerHTTP.CloseIdleConnections()
}

func (m *mesh) name(i int) string { return m.cfgs[i].Name }

// client is a cluster-token API client of node i. Retries are left to the
// caller (RetryFor 1ns: a failed request returns at once).
func (m *mesh) client(i int) *api.Client {
	c := api.NewClient("http://"+m.cfgs[i].HTTP, m.secret.ClusterToken())
	c.HTTP = m.http
	c.RetryFor = time.Nanosecond
	return c
}

// cliClient is a client of node i that retries as the CLI does (keyed
// spawns and reports for up to 15 s while there is no leader).
func (m *mesh) cliClient(i int) *api.Client {
	c := api.NewClient("http://"+m.cfgs[i].HTTP, m.secret.ClusterToken())
	c.HTTP = m.http
	return c
}

// leaderWatch counts leadership losses (a leader stepping down, or another
// node leading, as seen by polling every 10 ms) until stopped.
type leaderWatch struct {
	stop    chan struct{}
	done    chan struct{}
	changes int
	none    time.Duration // time with no live leader
}

func (m *mesh) watchLeader() *leaderWatch {
	lw := &leaderWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		last := m.leader()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-lw.stop:
				return
			case <-t.C:
			}
			l := m.leader()
			if l < 0 {
				if last >= 0 {
					lw.changes++ // the leader stepped down (or died)
				}
				lw.none += 10 * time.Millisecond
			} else if last >= 0 && l != last {
				lw.changes++
			}
			last = l
		}
	}()
	return lw
}

func (lw *leaderWatch) finish() *leaderWatch {
	close(lw.stop)
	<-lw.done
	return lw
}

// leader returns the index of the live node that leads, or -1.
func (m *mesh) leader() int {
	for i, nd := range m.nodes {
		if nd != nil && nd.IsLeader() {
			return i
		}
	}
	return -1
}

// waitLeader waits until some node leads (a loaded machine can be between
// leaders for a moment) and returns its index; a mesh without a leader
// for leaderWait is an error.
func (m *mesh) waitLeader(ctx context.Context) (int, error) {
	deadline := time.NewTimer(leaderWait)
	defer deadline.Stop()
	for {
		if l := m.leader(); l >= 0 {
			return l, nil
		}
		select {
		case <-deadline.C:
			return -1, fmt.Errorf("%w: the mesh has had no leader for %s", errTimeout, leaderWait)
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// settle waits until every node is up, sees every member and the same
// leader, every node is a Raft voter, and the leader runs its loops.
func (m *mesh) settle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	why := ""
	for {
		ok := true
		leader := ""
		for i, nd := range m.nodes {
			if nd == nil {
				ok, why = false, m.name(i)+" is down"
				break
			}
			st := nd.Status()
			if st.Leader == "" || (leader != "" && st.Leader != leader) {
				ok, why = false, fmt.Sprintf("%s sees leader %q (others %q)", nd.Name(), st.Leader, leader)
				break
			}
			leader = st.Leader
			if len(st.Members) != len(m.nodes) {
				ok, why = false, fmt.Sprintf("%s sees %d members", nd.Name(), len(st.Members))
				break
			}
			for _, mb := range st.Members {
				if !mb.Alive || mb.Raft != "voter" {
					ok, why = false, fmt.Sprintf("%s sees %s alive=%v raft=%s", nd.Name(), mb.Name, mb.Alive, mb.Raft)
					break
				}
			}
			if !ok {
				break
			}
		}
		if ok {
			// The leader answers writes once its dispatcher runs: a spawn
			// request is the simplest proof. Use a topic nobody serves: the
			// task stays queued and its job is cancelled right away.
			l := m.leader()
			if l >= 0 {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				res, err := m.client(l).Spawn(cctx, api.SpawnRequest{Topic: "bench-settle", Args: []string{"true"}, Key: randKey()})
				if err == nil {
					m.client(l).Cancel(cctx, res.Job)
				}
				cancel()
				if err == nil {
					return nil
				}
				why = "leader does not take writes yet: " + err.Error()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: mesh did not settle in %s: %s", errTimeout, timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// watcher evaluates conditions on one node's ledger replica after every
// apply and stamps the moment each first holds. One goroutine per replica
// serves every waiter.
type watcher struct {
	fsm  *raftfsm.FSM
	mu   sync.Mutex
	next int
	wait map[int]*watch
	kick chan struct{}
	stop chan struct{}
}

type watch struct {
	cond func(s *raftfsm.State) bool
	done chan time.Time
}

func newWatcher(fsm *raftfsm.FSM) *watcher {
	w := &watcher{fsm: fsm, wait: map[int]*watch{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	go w.loop()
	return w
}

func (w *watcher) close() { close(w.stop) }

func (w *watcher) loop() {
	for {
		_, ch := w.fsm.Watch()
		w.check()
		select {
		case <-ch:
		case <-w.kick:
		case <-w.stop:
			return
		}
	}
}

func (w *watcher) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.wait) == 0 {
		return
	}
	var fired []int
	w.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for id, wt := range w.wait {
			if wt.cond(s) {
				fired = append(fired, id)
			}
		}
	})
	now := time.Now()
	for _, id := range fired {
		w.wait[id].done <- now
		delete(w.wait, id)
	}
}

// add registers cond and returns a channel that receives the time it first
// held (checked at once, then after every apply).
func (w *watcher) add(cond func(s *raftfsm.State) bool) (int, <-chan time.Time) {
	w.mu.Lock()
	id := w.next
	w.next++
	ch := make(chan time.Time, 1)
	w.wait[id] = &watch{cond: cond, done: ch}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return id, ch
}

func (w *watcher) remove(id int) {
	w.mu.Lock()
	delete(w.wait, id)
	w.mu.Unlock()
}

// until waits for cond, up to timeout.
func (w *watcher) until(ctx context.Context, timeout time.Duration, what string, cond func(s *raftfsm.State) bool) (time.Time, error) {
	id, ch := w.add(cond)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t := <-ch:
		return t, nil
	case <-timer.C:
		w.remove(id)
		return time.Time{}, fmt.Errorf("%w: waited %s for %s", errTimeout, timeout, what)
	case <-ctx.Done():
		w.remove(id)
		return time.Time{}, ctx.Err()
	}
}

func taskTerminal(id string) func(s *raftfsm.State) bool {
	return func(s *raftfsm.State) bool {
		t := s.Tasks[id]
		return t != nil && t.State.Terminal()
	}
}

// timeWait counts TCP connections in TIME_WAIT with one end on one of the
// mesh's API or peer ports: connections opened and closed, not reused.
func (m *mesh) timeWait() int {
	ports := map[int]bool{}
	for _, c := range m.cfgs {
		for _, addr := range []string{c.HTTP, c.Raft} {
			_, p, _ := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(p)
			ports[n] = true
		}
	}
	count := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "06" { // 06: TIME_WAIT
				continue
			}
			for _, addr := range fields[1:3] {
				if i := strings.LastIndexByte(addr, ':'); i >= 0 {
					if p, err := strconv.ParseInt(addr[i+1:], 16, 32); err == nil && ports[int(p)] {
						count++
						break
					}
				}
			}
		}
	}
	return count
}
