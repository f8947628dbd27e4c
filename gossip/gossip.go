package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ourci/ourci/node/lograte"
)

// Profile selects memberlist timings.
type Profile string

const (
	// LAN: a subscription change reaches every node in well under a
	// second, and a dead node is declared within about 1.5 s (probes every
	// 300 ms; see BENCHMARKS.md, LAN defaults).
	// memberlist's default LAN profile pushes full state only every 30 s,
	// which leaves metadata tails of 15-30 s when a broadcast is missed.
	LAN Profile = "lan"
	// WAN: memberlist's WAN defaults, for slow or lossy links.
	WAN Profile = "wan"
)

// Config is what Start needs.
type Config struct {
	Name      string
	Bind      string   // host:port for gossip (TCP and UDP); port 0 picks one
	Advertise string   // host:port others use; "" derives it from Bind
	Key       []byte   // 16, 24 or 32 bytes: AES key that encrypts all gossip
	Keys      [][]byte // optional keyring: Keys[0] encrypts, all decrypt (rotation); overrides Key
	Meta      Meta
	Profile   Profile
	Logger    *slog.Logger
	// LogEvery is how often memberlist's lines about one source (a bad
	// packet, a refused stream) are written at most; 0: every 10 s.
	LogEvery time.Duration
	// Cut, for tests only (node/faults), says whether the member at a
	// gossip address is cut off now: packets to it are dropped and
	// streams to it fail. Nil: memberlist's own transport, untouched.
	Cut func(to string) bool
}

// Member is one live node as gossip sees it.
type Member struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // gossip address
	Meta Meta   `json:"meta"`
}

// Gossip is a running membership agent.
type Gossip struct {
	ml      *memberlist.Memberlist
	log     *slog.Logger
	keyring *memberlist.Keyring
	addr    string // this node's gossip address, as others see it

	mu      sync.Mutex
	meta    []byte
	change  chan struct{}
	members map[string]Member // live members, kept from memberlist's events

	logs *logWriter // memberlist's lines, throttled per source (logs.go)
}

// Start binds the gossip ports and starts the agent, alone; Join connects it.
func Start(cfg Config) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	meta, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	g := &Gossip{log: cfg.Logger, meta: meta, change: make(chan struct{}), members: map[string]Member{}}

	var mc *memberlist.Config
	switch cfg.Profile {
	case WAN:
		mc = memberlist.DefaultWANConfig()
		mc.DeadNodeReclaimTime = 30 * time.Second
	default:
		mc = memberlist.DefaultLANConfig()
		mc.GossipInterval = 50 * time.Millisecond
		mc.GossipNodes = 4
		mc.PushPullInterval = 5 * time.Second
		mc.ProbeInterval = 300 * time.Millisecond
		mc.ProbeTimeout = 150 * time.Millisecond
		mc.SuspicionMult = 3
		mc.GossipToTheDeadTime = 5 * time.Second
		// A node that died and comes back at another address (a new
		// machine under the old name, a port picked afresh) reclaims its
		// name this long after it was declared dead (memberlist's default
		// never lets it, until the dead entry is forgotten).
		mc.DeadNodeReclaimTime = 2 * time.Second
	}
	mc.Name = cfg.Name
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip: bind %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip: advertise %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = [][]byte{cfg.Key}
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	g.keyring = kr
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	g.logs = &logWriter{log: cfg.Logger, limit: lograte.Limiter{Every: cfg.LogEvery}}
	mc.Logger = log.New(g.logs, "", 0)
	if cfg.Cut != nil {
		if err := cutTransport(mc, cfg.Cut); err != nil {
			return nil, err
		}
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	g.ml = ml
	ln := ml.LocalNode()
	g.addr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	return g, nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

// Join contacts peers (gossip addresses) and merges their view. It
// succeeds if at least one answered.
func (g *Gossip) Join(peers []string) (int, error) {
	n, err := g.ml.Join(peers)
	if n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("gossip: join %v: %w", peers, err)
}

// Addr is this node's gossip address as others see it.
func (g *Gossip) Addr() string { return g.addr }

// Members returns the live nodes (this one included), sorted by name (none
// for a nil Gossip). A
// node whose metadata cannot be decoded is left out (and logged when it
// joins).
//
// The view is kept from memberlist's event callbacks, which run under its
// lock: the *memberlist.Node values that Memberlist.Members returns are
// updated in place by memberlist and cannot be read safely later.
func (g *Gossip) Members() []Member {
	if g == nil {
		return nil // a node without gossip (unit tests of its parts)
	}
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// SetMeta changes what this node gossips and spreads it.
func (g *Gossip) SetMeta(m Meta) error {
	b, err := EncodeMeta(m)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.meta = b
	g.mu.Unlock()
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSpread, err)
	}
	return nil
}

// ErrNotSpread: SetMeta stored the metadata (this node gossips it from
// now on, and its next pushes carry it) but its broadcast did not finish
// in time.
var ErrNotSpread = errors.New("gossip: metadata stored, not spread yet")

// Watch returns a channel closed at the next membership or metadata change.
func (g *Gossip) Watch() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.change
}

func (g *Gossip) changed() {
	g.mu.Lock()
	ch := g.change
	g.change = make(chan struct{})
	g.mu.Unlock()
	close(ch)
}

// Leave tells the others this node is going, then stops.
func (g *Gossip) Leave(timeout time.Duration) error {
	err := g.ml.Leave(timeout)
	return errors.Join(err, g.ml.Shutdown())
}

// Shutdown stops without telling anyone (as a crash would look).
func (g *Gossip) Shutdown() error { return g.ml.Shutdown() }

// delegate hands memberlist our metadata; OurCI sends no user messages.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the member view and turns memberlist's callbacks into a
// change signal. memberlist calls them with its node lock held: copy, never
// keep the *Node.
type events Gossip

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.log.Info("gossip: member joined", "member", n.Name, "addr", n.Address())
	e.upsert(n)
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.log.Info("gossip: member left or died", "member", n.Name, "addr", n.Address())
	e.mu.Lock()
	delete(e.members, n.Name)
	e.mu.Unlock()
	(*Gossip)(e).changed()
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.upsert(n) }

func (e *events) upsert(n *memberlist.Node) {
	meta, err := DecodeMeta(n.Meta)
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	e.mu.Lock()
	if err != nil {
		delete(e.members, n.Name)
	} else {
		e.members[n.Name] = Member{Name: n.Name, Addr: addr, Meta: meta}
	}
	e.mu.Unlock()
	if err != nil {
		e.log.Warn("gossip: ignoring member with unreadable metadata", "member", n.Name, "err", err)
	}
	(*Gossip)(e).changed()
}

// Keys returns the keyring, the key that encrypts first.
func (g *Gossip) Keys() [][]byte { return g.keyring.GetKeys() }

// InstallKey adds a key that decrypts (rotation, step 1: on every node).
func (g *Gossip) InstallKey(k []byte) error {
	if err := g.keyring.AddKey(k); err != nil {
		return fmt.Errorf("gossip: install key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the one that encrypts (step 2).
func (g *Gossip) UseKey(k []byte) error {
	if err := g.keyring.UseKey(k); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	return nil
}

// RemoveKey drops a key that no longer encrypts (step 3).
func (g *Gossip) RemoveKey(k []byte) error {
	if err := g.keyring.RemoveKey(k); err != nil {
		return fmt.Errorf("gossip: remove key: %w", err)
	}
	return nil
}
