package raftfsm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ourci/ourci/node/meshtls"
)

// Timing holds the Raft timings. LAN is the default: a mesh of machines on
// one network, where a round trip is well under a millisecond.
type Timing struct {
	Heartbeat   time.Duration // follower waits this long without contact before an election
	Election    time.Duration // candidate waits this long without a leader
	LeaderLease time.Duration // leader steps down after this long without a quorum
	Commit      time.Duration // idle followers learn the commit index at least this often
}

var (
	// LAN: a new leader about 0.35 s (p50) after the old one died (500 ms
	// timers: 0.9 s; 250 ms: 0.42-0.58 s), the lease as long as Raft allows
	// (≤ heartbeat), and followers learn a commit within a few milliseconds
	// even when no further entry follows it (raft only tells followers the
	// commit index on the next AppendEntries, sent at the latest after
	// Commit..2*Commit). The margin against spurious elections under load
	// is measured in BENCHMARKS.md (LAN defaults).
	LAN = Timing{Heartbeat: 200 * time.Millisecond, Election: 200 * time.Millisecond, LeaderLease: 200 * time.Millisecond, Commit: 2 * time.Millisecond}
	// WAN: hashicorp/raft's defaults, for meshes spread over slow links.
	WAN = Timing{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond, Commit: 50 * time.Millisecond}
)

// RaftConfig is what OpenRaft needs.
type RaftConfig struct {
	ID        string       // this node's name: the Raft server ID
	Dir       string       // data directory: raft.db and snapshots/ live here
	Listener  net.Listener // the peer port, plain TCP (already bound)
	Advertise net.Addr     // address others dial; nil means Listener.Addr()
	// TLS is this node's mesh certificate: peers connect over mutual TLS
	// and must hold a node certificate of the same CA. Nil: one is derived
	// from Secret (meshtls.Derive), which then must be set.
	TLS    *meshtls.Peer
	Secret []byte
	// PeerHTTP also admits the peer HTTP protocol (meshtls.ProtoHTTP) on
	// the port; Raft.PeerHTTP yields those connections.
	PeerHTTP bool
	// OnRefused hears each connection the peer port refused; nil: raft's
	// logger warns.
	OnRefused func(remote net.Addr, err error)
	Timing    Timing
	LogOutput io.Writer // raft's own log (warnings and up); nil means stderr
	// StrictVotes: only a voter in this node's own configuration grants
	// votes (voteguard.go). Every OurCI node sets it: it bootstraps alone,
	// so it never needs the vote of a server with an empty configuration,
	// which is what a wiped machine at an old voter's address has.
	StrictVotes bool
	// OnLogStore hears whether appending to the Raft log (or writing its
	// term and vote) works: the error when it starts failing, nil when it
	// works again. Nil: nobody listens.
	OnLogStore func(error)
	// Cut, for tests only (node/faults), says whether the peer at an
	// address is cut off now: Raft then neither dials it nor uses the
	// connections it has open to it. Nil: no faults.
	Cut func(to string) bool

	// SnapshotThreshold and TrailingLogs bound the log on disk; zero means
	// the defaults below.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration // how often the threshold is checked; 0: 30s
}

// Raft bundles a running raft.Raft with the stores it owns.
type Raft struct {
	*raft.Raft
	Transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	mux       *meshtls.Mux
	guard     *voteGuard
	gate      *gatedTransport // raft's heartbeat fast path, shut before the store closes
	dir       string
}

// PeerHTTP yields the peer port's HTTP connections, mutual TLS done (nil
// unless RaftConfig.PeerHTTP).
func (r *Raft) PeerHTTP() net.Listener {
	if r.mux == nil {
		return nil
	}
	return r.mux.Listener(meshtls.ProtoHTTP)
}

// OpenRaft starts Raft over fsm with its log and stable store in
// cfg.Dir/raft.db (raft-boltdb) and snapshots in cfg.Dir/snapshots. The
// directory is inspected first: damage is a *DataError matching
// ErrDamaged that names the file, and a directory another process holds
// fails within about a second with one matching ErrInUse.
func OpenRaft(cfg RaftConfig, fsm *FSM) (*Raft, error) {
	if cfg.TLS == nil && len(cfg.Secret) == 0 {
		return nil, errors.New("raftfsm: open raft: no TLS identity and no cluster secret")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftfsm: open raft: %w", err)
	}
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft." + cfg.ID, Level: hclog.Warn, Output: out})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logger
	t := cfg.Timing
	if t == (Timing{}) {
		t = LAN
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout = t.Heartbeat, t.Election, t.LeaderLease, t.Commit
	rc.SnapshotThreshold = 8192
	rc.TrailingLogs = 10240
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.SnapshotInterval = 30 * time.Second
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	rc.MaxAppendEntries = 512
	// No BatchApplyCh: the leader's dispatcher batches already, and a
	// buffered apply channel leaves futures unanswered at shutdown.
	rc.BatchApplyCh = false

	st, err := inspect(cfg.Dir, fsm)
	if err != nil {
		return nil, err
	}
	// The newest snapshot is in fsm already, checked: raft takes only its
	// index, term and configuration.
	rc.NoSnapshotRestoreOnStart = st.restored
	store, err := openStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cache, err := raft.NewLogCache(1024, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("raftfsm: log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	peer := cfg.TLS
	if peer == nil {
		if peer, err = meshtls.Derive(cfg.Secret, cfg.ID); err != nil {
			store.Close()
			return nil, fmt.Errorf("raftfsm: %w", err)
		}
	}
	protos := []string{meshtls.ProtoRaft}
	if cfg.PeerHTTP {
		protos = append(protos, meshtls.ProtoHTTP)
	}
	refused := cfg.OnRefused
	if refused == nil {
		refused = func(remote net.Addr, err error) {
			logger.Warn("refused a connection on the peer port: not a node of this mesh", "remote", remote.String(), "error", err)
		}
	}
	mux := meshtls.Listen(cfg.Listener, peer, refused, protos...)
	stream := &tlsStream{Listener: mux.Listener(meshtls.ProtoRaft), advertise: cfg.Advertise, peer: peer, cut: cfg.Cut}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 5, Timeout: 10 * time.Second, Logger: logger,
		// No pipelined replication (1 = one AppendEntries in flight per
		// follower; each still carries every pending entry, up to
		// MaxAppendEntries). raft v1.8's pipeline can deadlock: when a
		// follower answers Success=false or a newer term, the decoder
		// stops, and the sender may park on an unbuffered channel for good.
		// That follower then gets heartbeats but never another entry, and
		// Shutdown waits forever (seen here as a node's Close hanging in
		// the bench under leadership churn; see hashicorp/raft#612).
		MaxRPCsInFlight: 1,
	})
	var logs raft.LogStore = cache
	var stable raft.StableStore = store
	if cfg.OnLogStore != nil {
		w := &watchedLogs{LogStore: cache, onChange: cfg.OnLogStore}
		logs, stable = w, &watchedStable{StableStore: store, logs: w}
	}
	gate := &gatedTransport{NetworkTransport: trans}
	var guard *voteGuard
	var rtrans raft.Transport = gate
	if cfg.StrictVotes {
		guard = newVoteGuard(gate, rc.LocalID)
		rtrans = guard
	}
	r, err := raft.NewRaft(rc, fsm, logs, stable, snaps, rtrans)
	if err != nil {
		trans.Close()
		mux.Close()
		store.Close()
		return nil, fmt.Errorf("raftfsm: start raft: %w", err)
	}
	if guard != nil {
		go guard.run(r) // ends with Close
	}
	return &Raft{Raft: r, Transport: trans, store: store, mux: mux, dir: cfg.Dir, guard: guard, gate: gate}, nil
}

// openStore opens raft.db for writing: an exclusive lock, so ErrInUse
// after lockWait while another process holds it. inspect checked the file
// before; a panic in bbolt is still turned into an error.
func openStore(dir string) (store *raftboltdb.BoltStore, err error) {
	path := filepath.Join(dir, raftDB)
	defer func() {
		if p := recover(); p != nil {
			store, err = nil, damaged(dir, path, fmt.Sprintf("opening it failed: %v", p), nil)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	store, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: lockWait}})
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		return nil, &DataError{Dir: dir, File: path, Kind: ErrInUse, Err: err}
	case err != nil:
		return nil, fmt.Errorf("raftfsm: open %s: %w", path, err)
	}
	return store, nil
}

// HasState reports whether dir already holds a Raft log or snapshot, i.e.
// the node was part of a mesh before and must not bootstrap a new one. It
// inspects the directory as OpenRaft does (but leaves the snapshots'
// contents to OpenRaft), so damage and a directory in use are the same
// *DataError, never a panic.
func HasState(dir string) (bool, error) {
	st, err := inspect(dir, nil)
	if err != nil {
		return false, err
	}
	return st.hasState(), nil
}

// Bootstrap makes this node the sole voter of a new mesh.
func (r *Raft) Bootstrap(id string) error {
	cfg := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(id), Address: r.Transport.LocalAddr(), Suffrage: raft.Voter,
	}}}
	if err := r.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("raftfsm: bootstrap: %w", err)
	}
	return nil
}

// Close shuts Raft down and closes its stores.
func (r *Raft) Close() error {
	err := r.Shutdown().Error()
	if r.guard != nil {
		select {
		case <-r.guard.stop:
		default:
			close(r.guard.stop)
		}
	}
	r.Transport.Close()
	r.mux.Close()
	if r.gate != nil {
		r.gate.shut() // a heartbeat still saving a term finishes first
	}
	return errors.Join(err, r.store.Close())
}
