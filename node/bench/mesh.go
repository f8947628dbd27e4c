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
	"github.com/ourci/ourci/node/nodetest/ports"
	"github.com/ourci/ourci/raftfsm"
)

// mesh is an in-process mesh of real nodes on 127.0.0.1, each on ports
// reserved for the mesh's life (package ports); a killed node comes back
// at the same addresses.
type mesh struct {
	r       *run
	secret  node.Secret
	cfgs    []node.Config
	topics  [][]node.Topic // each node's own offer, as configured
	nodes   []*node.Node   // nil while killed
	started []time.Time
	ports   []int // reserved, released by close
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
	// Not port 0: a port the kernel picks is in its ephemeral range, and
	// while a killed node is down any socket may get it (the bench's own
	// clients open hundreds of connections), so the node could not come
	// back. Reserved ports lie outside that range and are locked against
	// other processes that reserve.
	if m.ports, err = ports.Reserve("127.0.0.1", 3*n); err != nil {
		return nil, fmt.Errorf("mesh ports: %w", err)
	}
	addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(m.ports[k]) }
	for i := 0; i < n; i++ {
		name := "node" + strconv.Itoa(i)
		topics := []node.Topic{{Name: "bench"}, {Name: "bench-" + name}}
		cfg := node.Config{
			Name: name, DataDir: filepath.Join(r.dir, name),
			Bind: addr(3 * i), Raft: addr(3*i + 1), HTTP: addr(3*i + 2), Topics: topics, Slots: r.o.Slots,
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

// startWait bounds how long start waits for a port of the node that some
// other socket holds (scaled).
const startWait = 30 * time.Second

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
	// The ports are reserved, but a process that does not reserve may
	// still bind one (or a socket of the killed node linger a moment):
	// wait that out for a while, then say who holds them.
	deadline := time.Now().Add(scaled(startWait))
	for tries := 1; ; tries++ {
		nd, err := node.Start(cfg)
		if err == nil {
			m.nodes[i] = nd
			m.started[i] = time.Now()
			if tries > 1 {
				m.r.note("mesh", "%s started at try %d: a port of it was taken for a while", cfg.Name, tries)
			}
			return nil
		}
		if !ports.InUse(err) || time.Now().After(deadline) {
			return fmt.Errorf("start %s (try %d in %s): %w; %s", cfg.Name, tries, scaled(startWait), err, holders(cfg))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// holders names the sockets on cfg's ports.
func holders(cfg node.Config) string {
	var out []string
	for _, a := range []string{cfg.Bind, cfg.Raft, cfg.HTTP} {
		_, p, _ := net.SplitHostPort(a)
		if n, err := strconv.Atoi(p); err == nil && n > 0 {
			out = append(out, fmt.Sprintf("port %d: %s", n, ports.Holders(n)))
		}
	}
	return strings.Join(out, "; ")
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
	ports.Release(m.ports...)
	m.ports = nil
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
	deadline := time.NewTimer(scaled(leaderWait))
	defer deadline.Stop()
	for {
		if l := m.leader(); l >= 0 {
			return l, nil
		}
		select {
		case <-deadline.C:
			return -1, fmt.Errorf("%w: the mesh has had no leader for %s", errTimeout, scaled(leaderWait))
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// settle waits until every node is up, sees every member and the same
// leader, every node is a Raft voter, and the leader takes a write, for
// up to timeout (scaled by OURCI_TEST_TIMEOUT_SCALE, as every wait of the
// harness).
//
// On a loaded machine a settle spans slow commits and leadership changes.
// The proof write therefore keeps one idempotency key across tries: a
// spawn that committed after its try gave up is the next try's answer,
// where a fresh key each time would add one more spawn to the very load
// that made it slow (and leave it queued: only a returned spawn is
// cancelled). A timeout says what held last, for how long, and what held
// before.
func (m *mesh) settle(ctx context.Context, timeout time.Duration) error {
	limit := scaled(timeout)
	deadline := time.Now().Add(limit)
	var hist reasons
	key := randKey()
	for {
		why := m.unsettled()
		if why == "" {
			why = m.takesWrites(ctx, key, deadline)
			if why == "" {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w (settling: %s)", err, hist.String())
		}
		hist.note(why)
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: mesh did not settle in %s: %s", errTimeout, limit, hist.String())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (settling: %s)", ctx.Err(), hist.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// unsettled says what keeps the mesh from being settled as the nodes see
// it, or "" when nothing does.
func (m *mesh) unsettled() string {
	leader := ""
	for i, nd := range m.nodes {
		if nd == nil {
			return m.name(i) + " is down"
		}
		st := nd.Status()
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return fmt.Sprintf("%s sees leader %q (others %q)", nd.Name(), st.Leader, leader)
		}
		leader = st.Leader
		if len(st.Members) != len(m.nodes) {
			return fmt.Sprintf("%s sees %d members of %d", nd.Name(), len(st.Members), len(m.nodes))
		}
		for _, mb := range st.Members {
			if !mb.Alive || mb.Raft != "voter" {
				return fmt.Sprintf("%s sees %s alive=%v raft=%s", nd.Name(), mb.Name, mb.Alive, mb.Raft)
			}
		}
	}
	return ""
}

// settleTry bounds one try of the proof write (scaled): long enough for
// a commit on a loaded disk, short enough to try a new leader soon.
const settleTry = 10 * time.Second

// takesWrites spawns, through the leader, a task nobody serves under key
// and cancels its job; it returns "" once that worked, else why not.
func (m *mesh) takesWrites(ctx context.Context, key string, deadline time.Time) string {
	l := m.leader()
	if l < 0 {
		return "every node names a leader, but none leads now"
	}
	// The leader answers writes once its dispatcher runs: a spawn request
	// is the simplest proof. Use a topic nobody serves: the task stays
	// queued until its job is cancelled.
	cctx, cancel := context.WithTimeout(ctx, max(min(scaled(settleTry), time.Until(deadline)), time.Second))
	res, err := m.client(l).Spawn(cctx, api.SpawnRequest{Topic: "bench-settle", Args: []string{"true"}, Key: key})
	cancel()
	if err != nil {
		return fmt.Sprintf("%s, the leader, does not take writes yet: %v", m.name(l), err)
	}
	// Best effort: a job left open only holds one queued task.
	cctx, cancel = context.WithTimeout(ctx, scaled(settleTry))
	m.client(l).Cancel(cctx, res.Job)
	cancel()
	return ""
}

// reasons is the history of a wait's reasons, for its timeout message.
type reasons struct {
	list []reason
}

type reason struct {
	why         string
	first, last time.Time
	times       int // separate stretches it held
}

// maxReasons bounds the history a timeout message shows.
const maxReasons = 6

func (h *reasons) note(why string) {
	now := time.Now()
	if n := len(h.list); n > 0 && h.list[n-1].why == why {
		h.list[n-1].last = now
		return
	}
	for i, r := range h.list {
		if r.why == why { // back to an earlier reason: move it last
			h.list = append(h.list[:i], h.list[i+1:]...)
			h.list = append(h.list, reason{why: why, first: now, last: now, times: r.times + 1})
			return
		}
	}
	h.list = append(h.list, reason{why: why, first: now, last: now, times: 1})
	if len(h.list) > maxReasons {
		h.list = h.list[1:]
	}
}

// String gives the last reason and how long it has held, then the ones
// before it, latest first.
func (h *reasons) String() string {
	if len(h.list) == 0 {
		return "no reason seen yet"
	}
	var sb strings.Builder
	for i := len(h.list) - 1; i >= 0; i-- {
		r := h.list[i]
		switch i {
		case len(h.list) - 1:
			fmt.Fprintf(&sb, "%s (for the last %s", r.why, r.last.Sub(r.first).Round(time.Millisecond))
		case len(h.list) - 2:
			fmt.Fprintf(&sb, "; before that: %s (%s", r.why, r.last.Sub(r.first).Round(time.Millisecond))
		default:
			fmt.Fprintf(&sb, "; %s (%s", r.why, r.last.Sub(r.first).Round(time.Millisecond))
		}
		if r.times > 1 {
			fmt.Fprintf(&sb, ", %d times", r.times)
		}
		sb.WriteString(")")
	}
	return sb.String()
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
	timeout = scaled(timeout)
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
