package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/artifacts"
	"github.com/ourci/ourci/node/checkout"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/faults"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/node/lograte"
	"github.com/ourci/ourci/node/meshtls"
	"github.com/ourci/ourci/node/metrics"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// Node is one running ourci-node: a gossip agent, a Raft member holding a
// ledger replica, the task runner and the HTTP API.
type Node struct {
	cfg    Config
	log    *slog.Logger
	fsm    *raftfsm.FSM
	raft   *raftfsm.Raft
	gossip *gossip.Gossip

	httpLn net.Listener
	api    *httpapi.Server // the HTTP API (http.go)
	// fetcher and collector keep the blob copies here in line with the
	// ledger (node/artifacts, blob_loops.go).
	fetcher   *artifacts.Fetcher
	collector *artifacts.Collector
	httpSrv   *http.Server
	httpURL   string // advertised base URL of the API

	// The peer API: node-to-node HTTP on the Raft port, over mutual TLS.
	peerSrv *http.Server
	peerURL string // https://RAFT-ADDRESS
	// peerRefused counts connections the peer port refused.
	peerRefused atomic.Uint64
	refused     refusals               // the public API's refusals, throttled logs (netguard.go)
	httpLimit   *connLimit             // the public listener's per-client cap
	hooks       *httpapi.WebhookBudget // webhook bytes in flight (node/httpapi)
	hookMu      sync.Mutex             // the leader judges and commits one webhook at a time
	peer        *meshtls.Peer          // this node's mesh certificate

	runner   *runner.Runner
	records  *runner.Records // run records of the attempts this life started (DATA_DIR/run)
	live     liveLogs        // copies of other nodes' running attempts' output (logs_stream.go)
	sections sectionsCache   // of the sealed logs read last (logs_sections.go)
	seals    logSeals        // attempts being sealed, and those whose seal failed (logs_sweep.go)
	schemas  schemaSeen      // the ledger schema each member last gossiped (version.go)
	logs     *tasklog.Store
	blobs    *blobs.Store
	peerHTTP *http.Client // node-to-node calls (mutual TLS; peer URLs only)
	peers    *peer.Client // the typed client over peerHTTP (node/peer)
	extHTTP  *http.Client // calls out of the mesh (GitHub's API)
	mirrors  *checkout.Mirrors
	offer    atomic.Pointer[offer]
	metrics  *metrics.Metrics // Prometheus, served at /metrics (metrics_hooks.go)

	backendMu sync.Mutex
	backends  map[string]executor.Backend // per topic, made on first use (executors.go)
	exec      execState                   // host executor, cgroups, container network listeners (executors.go)

	health health // why it cannot take work, if it cannot (health.go)

	offerMu sync.Mutex  // serialises SetOffer
	meta    gossip.Meta // what this node gossips; guarded by offerMu

	started time.Time
	id      identity // this data directory's Raft server ID (identity.go)
	// ready is closed once the replica caught up with the mesh (catchup.go).
	ready     chan struct{}
	readyOnce sync.Once
	// holdGate is closed once this node may record copies it holds: at
	// once, or after its blob store's reset (blobs_reset.go).
	holdGate chan struct{}
	holdOnce sync.Once
	// peersWritten is the last peers file content (joinLoop only).
	peersWritten string
	done         chan struct{} // closed when the node shut itself down (drain)
	doneOnce     sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	dispatcher *leader.Dispatcher // set while leader
	leading    broadcast          // notified when leadership or the dispatcher changes
	closed     bool
}

// Start brings a node up: Raft on its data directory (bootstrapping a new
// mesh when it has no peers and no prior state), gossip (joining Peers and
// the members it remembers), the runner and the API.
func Start(cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Name), fsm: raftfsm.NewFSM(), started: time.Now(),
		refused: refusals{log: lograte.Limiter{Every: cfg.LogEvery}}, hooks: httpapi.NewWebhookBudget(cfg.WebhookInflight),
		done: make(chan struct{}), backends: map[string]executor.Backend{}, ready: make(chan struct{}),
		holdGate: make(chan struct{}), health: health{kick: make(chan struct{}, 1)},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	advHost, err := advertiseHost(cfg)
	if err != nil {
		return nil, err
	}
	cert := cfg.TLS
	if cert == nil {
		if cert, err = meshtls.Derive(cfg.Secret.TLSSeed(), cfg.Name); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	n.peer = cert
	if left := time.Until(cert.NotAfter()); left < 30*24*time.Hour {
		n.log.Warn("this node's mesh certificate expires soon: issue a new one with `ourci-node tls cert` and restart the node", "expires", cert.NotAfter(), "left", left.Round(time.Hour))
	}
	raftLn, err := net.Listen("tcp", cfg.Raft)
	if err != nil {
		return nil, fmt.Errorf("node: raft listen %s: %w", cfg.Raft, err)
	}
	raftAdv := &net.TCPAddr{IP: net.ParseIP(advHost), Port: raftLn.Addr().(*net.TCPAddr).Port}
	if raftAdv.IP == nil {
		raftLn.Close()
		return nil, fmt.Errorf("node: advertise address %q is not an IP", advHost)
	}
	hadState, err := raftfsm.HasState(cfg.DataDir)
	if err != nil {
		raftLn.Close()
		return nil, err
	}
	if n.id, err = loadIdentity(cfg.DataDir, cfg.Name, hadState); err != nil {
		raftLn.Close()
		return nil, err
	}
	n.raft, err = raftfsm.OpenRaft(raftfsm.RaftConfig{
		ID: n.id.ID, Dir: cfg.DataDir, Listener: raftLn, Advertise: raftAdv,
		TLS: cert, PeerHTTP: true, Timing: cfg.RaftTiming, LogOutput: &slogWriter{log: n.log}, OnLogStore: n.noteRaftLog, StrictVotes: true,
		OnRefused: n.peerRefusedConn, Cut: faults.From(cfg.Faults, cfg.Name),
	}, n.fsm)
	if err != nil {
		raftLn.Close()
		return nil, err
	}
	if !hadState && len(cfg.Peers) == 0 {
		n.log.Info("starting a new mesh")
		if err := n.raft.Bootstrap(n.id.ID); err != nil {
			return nil, err
		}
	}

	n.httpLn, err = net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("node: http listen %s: %w", cfg.HTTP, err)
	}
	httpPort := n.httpLn.Addr().(*net.TCPAddr).Port
	httpHost, _, _ := net.SplitHostPort(cfg.HTTP)
	if ip := net.ParseIP(httpHost); ip == nil || ip.IsUnspecified() {
		httpHost = advHost
	}
	n.httpURL = "http://" + net.JoinHostPort(httpHost, strconv.Itoa(httpPort))

	of := &offer{topics: cfg.Topics, slots: cfg.Slots}
	n.offer.Store(of)
	n.meta = gossip.Meta{
		Raft: raftAdv.String(), HTTP: net.JoinHostPort(httpHost, strconv.Itoa(httpPort)),
		Slots: cfg.Slots, Topics: of.topicNames(), Kinds: kindsMeta(cfg.Topics), EnvAllow: envAllowMeta(cfg.Topics),
		ID: n.id.ID, Since: n.started.Unix(), Schema: cmp.Or(cfg.GossipSchema, raftfsm.LedgerSchema), Binary: Version(), NoVote: cfg.Voter == VoterNever, CatchingUp: true,
	}
	keys, err := n.gossipKeys()
	if err != nil {
		return nil, err
	}
	n.gossip, err = gossip.Start(gossip.Config{
		Name: cfg.Name, Bind: cfg.Bind, Advertise: advertiseFor(cfg.Bind, advHost),
		Keys: keys, Profile: cfg.GossipProfile, Logger: n.log, Meta: n.meta, LogEvery: cfg.LogEvery,
		Cut: faults.From(cfg.Faults, cfg.Name),
	})
	if err != nil {
		return nil, err
	}

	if err := n.setupExecutors(); err != nil {
		return nil, err
	}
	n.records = runner.NewRecords(n.runDir())
	_, previous := n.killOrphans()
	n.logs = tasklog.New(filepath.Join(cfg.DataDir, "logs"), cfg.MaxLogBytes)
	n.mirrors = &checkout.Mirrors{Dir: filepath.Join(cfg.DataDir, "git")}
	n.blobs, err = blobs.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	n.blobs.OnCorrupt = func(h blobs.Hash) {
		n.log.Warn("a local blob copy failed its hash check: deleted, will be fetched again from a good holder", "hash", h)
		go n.reportAsync(api.Report{Kind: api.ReportBlobDropped, Node: n.cfg.Name, Hash: string(h)})
	}
	n.peerURL = peerURL(raftAdv.String())
	n.peerHTTP = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     cert.ClientConfig(meshtls.ProtoHTTP),
		TLSHandshakeTimeout: meshtls.HandshakeTimeout, DialContext: cfg.peerDial(),
		// Relayed spawns and reports come in bursts: keep enough
		// connections per peer open that a burst does not dial.
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 30 * time.Second,
	}}
	n.peers = &peer.Client{HTTP: n.peerHTTP, Token: cfg.Secret.ClusterToken(), Self: cfg.Name}
	n.extHTTP = &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 30 * time.Second,
	}}
	n.metrics = n.newMetrics() // before anything that observes (runner, leader loops, HTTP)
	n.fetcher = &artifacts.Fetcher{Self: cfg.Name, Store: n.blobs, Ledger: n.fsm, Members: meshView{n}, Record: copyRecorder{n},
		HTTP: n.blobFetchClient(), Auth: n.peers.Auth, Go: n.goFunc, Log: n.log}
	n.collector = &artifacts.Collector{Self: cfg.Name, Store: n.blobs, Ledger: n.fsm, Record: copyRecorder{n}, Now: cfg.Clock.Now, Log: n.log}
	n.runner = runner.New(n.ctx, runner.Config{
		Name: cfg.Name, WorkDir: cfg.WorkDir, TaskTimeout: cfg.TaskTimeout, Grace: cfg.Grace,
		TaskUser: cfg.TaskUser, Binary: n.binary(), Secret: cfg.Secret, Clock: cfg.Clock, Log: n.log,
		Ledger: n.fsm, Reporter: reporter{n}, Host: runnerHost{n}, Metrics: n.metrics, Sources: n.mirrors,
		Logs: n.logs, Records: n.records, Previous: previous,
	})
	if empty, err := n.blobs.Empty(); err == nil && empty {
		n.goFunc(n.resetHoldings)
	} else {
		n.holdOpen()
	}
	n.api = n.newAPI()
	n.httpSrv = n.newServer(n.api.Routes(false))
	n.peerSrv = n.newServer(n.api.Routes(true))
	n.httpLimit = newConnLimit(n.httpLn, cfg.MaxConnsPerClient, cfg.MaxConnsLoopback, n.connRefused)
	n.goFunc(func() {
		if err := n.httpSrv.Serve(n.httpLimit); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("node: http server stopped", "err", err)
		}
	})
	n.goFunc(func() {
		if err := n.peerSrv.Serve(n.raft.PeerHTTP()); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("node: peer http server stopped", "err", err)
		}
	})
	n.goFunc(n.joinLoop)
	n.goFunc(n.leadershipLoop)
	n.goFunc(n.catchUp)
	n.goFunc(n.healthLoop)
	n.goFunc(func() { n.runner.Run(n.ready) })
	n.goFunc(n.gcLoop)
	n.goFunc(n.liveLogLoop)
	n.goFunc(n.logSweepLoop)
	n.goFunc(func() { n.sweepBackends(n.ctx) })
	n.goFunc(func() { artifacts.VerifyUnflushed(n.blobs, n.log) })
	n.log.Info("node up", "gossip", n.gossip.Addr(), "peer", raftAdv.String(), "tls_ca", cert.CA().Subject.CommonName, "http", n.httpURL, "topics", of.topicNames(), "slots", cfg.Slots)
	return n, nil
}

func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// advertiseHost picks the IP others use to reach this node.
func advertiseHost(cfg Config) (string, error) {
	if cfg.Advertise != "" {
		return cfg.Advertise, nil
	}
	h, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return "", fmt.Errorf("%w: --bind %q: %w", ErrConfig, cfg.Bind, err)
	}
	if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
		return h, nil
	}
	ip, err := sockaddr.GetPrivateIP()
	if err != nil || ip == "" {
		return "", fmt.Errorf("%w: cannot tell which address to advertise; give --advertise", ErrConfig)
	}
	return ip, nil
}

func advertiseFor(bind, host string) string {
	_, p, err := net.SplitHostPort(bind)
	if err != nil || p == "0" {
		return "" // memberlist advertises the port it bound
	}
	return net.JoinHostPort(host, p)
}

// SetOffer changes the topics this node subscribes to and its slots while
// it runs, and gossips the change. Attempts already running keep going;
// new assignments follow the new offer.
func (n *Node) SetOffer(topics []Topic, slots int) error {
	if err := validateTopics(topics); err != nil {
		return err
	}
	if slots < 0 {
		return fmt.Errorf("%w: %d slots", ErrConfig, slots)
	}
	of := &offer{topics: append([]Topic(nil), topics...), slots: slots}
	n.offerMu.Lock()
	defer n.offerMu.Unlock()
	m := n.meta
	m.Topics, m.Slots, m.Kinds, m.EnvAllow = of.topicNames(), slots, kindsMeta(of.topics), envAllowMeta(of.topics)
	if err := n.gossip.SetMeta(m); errors.Is(err, gossip.ErrNotSpread) {
		// Stored: this node gossips it from now on, so its own offer must
		// say the same (its next pushes spread it).
		n.log.Warn("gossip: the new offer is not spread yet", "err", err)
	} else if err != nil {
		return err
	}
	n.meta = m
	n.offer.Store(of)
	n.log.Info("offer changed", "topics", m.Topics, "slots", slots)
	return nil
}

// updateMeta changes what this node gossips; a failure to spread it is
// logged (gossip retries with its next push).
func (n *Node) updateMeta(change func(m *gossip.Meta)) {
	n.offerMu.Lock()
	defer n.offerMu.Unlock()
	m := n.meta
	change(&m)
	if err := n.gossip.SetMeta(m); err != nil {
		n.log.Warn("gossip: could not spread this node's metadata", "err", err)
	}
	n.meta = m
}

// leaderName is the name of the node Raft names as leader, "" if none.
func (n *Node) leaderName() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	return leader.NameOfID(id)
}

// TakeSnapshot compacts this node's Raft log into a snapshot of its
// replica now (Raft does so by itself every 8192 entries). For backups, use
// `ourci-node operator snapshot save` instead.
func (n *Node) TakeSnapshot() error { return n.raft.Snapshot().Error() }

// Ready reports whether the node's replica caught up with the mesh since
// it started: before, it runs and collects nothing.
func (n *Node) Ready() bool { return n.isReady() }

// RaftID is this node's Raft server ID (it belongs to its data directory).
func (n *Node) RaftID() string { return n.id.ID }

// PeerAddr is the node's peer port (Raft and the node-to-node API over
// mutual TLS), as advertised.
func (n *Node) PeerAddr() string { return strings.TrimPrefix(n.peerURL, "https://") }

// PeerRefused is how many connections the peer port refused.
func (n *Node) PeerRefused() uint64 { return n.peerRefused.Load() }

// URL is the node's API base URL.
func (n *Node) URL() string { return n.httpURL }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// GossipAddr is the node's gossip address, for others' --peer.
func (n *Node) GossipAddr() string { return n.gossip.Addr() }

// FSM exposes the local ledger replica (read-only use).
func (n *Node) FSM() *raftfsm.FSM { return n.fsm }

// IsLeader reports whether this node leads the Raft group now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// ClusterToken is the token nodes use with each other.
func (n *Node) clusterClient(base string) *api.Client { return n.peers.API(base) }

// leaderURL returns the leader's peer API URL, waiting up to wait for a
// leader.
func (n *Node) leaderURL(ctx context.Context, wait time.Duration) (string, error) {
	return peer.LeaderURL(ctx, directory{n}, wait)
}

var errNoLeader = peer.ErrNoLeader

// directory is the node's view of who leads and where members are, for
// node/peer.
type directory struct{ n *Node }

func (d directory) LeaderName() string                   { return d.n.leaderName() }
func (d directory) MemberURL(name string) (string, bool) { return d.n.memberURL(name) }

// memberURL returns a live member's peer API URL: node-to-node calls go
// over mutual TLS to the member's Raft port, with n.peerHTTP.
func (n *Node) memberURL(name string) (string, bool) {
	if name == n.cfg.Name {
		return n.peerURL, true
	}
	for _, m := range n.gossip.Members() {
		if m.Name == name {
			return peerURL(m.Meta.Raft), true
		}
	}
	return "", false
}

func peerURL(raftAddr string) string { return "https://" + raftAddr }

// joinLoop joins the configured and remembered peers, retrying until one
// answers, then keeps the remembered list current.
func (n *Node) joinLoop() {
	peers := append(append([]string(nil), n.cfg.Peers...), n.rememberedPeers()...)
	backoff := 100 * time.Millisecond
	for len(peers) > 0 {
		if _, err := n.gossip.Join(peers); err == nil {
			break
		} else {
			n.log.Warn("node: join failed, retrying", "err", err, "retry_in", backoff)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	// Gossip gives up on members it declared dead (memberlist stops
	// gossiping to them after GossipToTheDeadTime), so after a partition
	// longer than that neither side would call the other again. Members
	// still in the Raft configuration are therefore rejoined, every few
	// seconds, until gossip sees them again.
	known := map[string]string{}
	joining := false
	var mu sync.Mutex
	for {
		ch := n.gossip.Watch()
		alive := map[string]bool{}
		for _, m := range n.gossip.Members() {
			alive[m.Name] = true
			known[m.Name] = m.Addr
		}
		n.rememberPeers(known)
		var lost []string
		if f := n.raft.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if addr, ok := known[leader.NameOfID(s.ID)]; ok && !alive[leader.NameOfID(s.ID)] {
					lost = append(lost, addr)
				}
			}
		}
		mu.Lock()
		if len(lost) > 0 && !joining {
			joining = true
			n.goFunc(func() {
				if k, err := n.gossip.Join(lost); err == nil {
					n.log.Info("gossip: rejoined members it had lost", "members", k)
				}
				mu.Lock()
				joining = false
				mu.Unlock()
			})
		}
		mu.Unlock()
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		case <-time.After(2 * time.Second):
		}
	}
}

func (n *Node) peersFile() string { return filepath.Join(n.cfg.DataDir, "peers.json") }

func (n *Node) rememberedPeers() []string {
	b, err := os.ReadFile(n.peersFile())
	if err != nil {
		return nil
	}
	var peers []string
	if err := json.Unmarshal(b, &peers); err != nil {
		n.log.Warn("node: ignoring unreadable peers file", "err", err)
		return nil
	}
	return peers
}

// rememberPeers keeps the gossip addresses of every member seen, so a node
// that restarts finds the mesh again without --peer.
func (n *Node) rememberPeers(known map[string]string) {
	var peers []string
	for name, addr := range known {
		if name != n.cfg.Name {
			peers = append(peers, addr)
		}
	}
	if len(peers) == 0 {
		return
	}
	slices.Sort(peers)
	b, _ := json.Marshal(peers)
	if string(b) == n.peersWritten {
		return
	}
	n.peersWritten = string(b)
	tmp := n.peersFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, n.peersFile())
	}
}

// Close stops the node: running tasks are stopped and handed back to the
// mesh, leadership is handed over, and the node leaves gossip.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()

	if n.runner != nil {
		// Take no new work first: the leader must not hand what this node
		// gives back straight back to it.
		n.runner.Stop()
		if n.gossip != nil {
			n.updateMeta(func(m *gossip.Meta) { m.Draining = true })
		}
		n.runner.Shutdown(5 * time.Second)
	}
	if n.raft != nil && n.IsLeader() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Debug("node: leadership transfer", "err", err)
		}
	}
	n.cancel()
	var errs []error
	if n.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.httpSrv.Shutdown(ctx)
		cancel()
		n.httpSrv.Close()
	} else if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.peerSrv != nil {
		n.peerSrv.Close()
	}
	if n.gossip != nil {
		errs = append(errs, n.gossip.Leave(time.Second))
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Close())
	}
	n.wg.Wait()
	if n.runner != nil {
		// An attempt the runner started after shutdown looked (its loop
		// ran until cancel) stops with the context: wait for it, so
		// nothing writes in the data directory once Close returned.
		n.runner.Wait()
	}
	if n.blobs != nil {
		errs = append(errs, n.blobs.Close())
	}
	n.closeExecutors()
	return errors.Join(errs...)
}

// Kill stops the node abruptly, as a crash would (tests).
func (n *Node) Kill() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	if n.runner != nil {
		n.runner.Kill()
	}
	n.httpSrv.Close()
	n.peerSrv.Close()
	n.gossip.Shutdown()
	n.raft.Close()
	n.wg.Wait()
	n.closeExecutors() // its attempts were stopped: only the empty node cgroup is left
}

// slogWriter routes a library's log lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("raft", "msg", string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// BlobStore exposes the node's local blob store (tests, tools).
func (n *Node) BlobStore() *blobs.Store { return n.blobs }
