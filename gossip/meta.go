package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the metadata encoding this binary writes.
const MetaVersion = 1

// Meta is what a node gossips about itself. It must encode to at most
// memberlist.MetaMaxSize (512) bytes.
//
// Fields are only ever added, each omitted when zero, so that an older
// binary reads what a newer one gossips (it ignores what it does not know).
type Meta struct {
	Version  int      `json:"v"`
	Raft     string   `json:"r"`           // Raft address (host:port)
	HTTP     string   `json:"h"`           // API address (host:port)
	Slots    int      `json:"s"`           // tasks it runs at once
	Topics   []string `json:"t,omitempty"` // topics it subscribes to, sorted
	Draining bool     `json:"d,omitempty"` // takes no new tasks

	// ID is the node's Raft server ID, which belongs to its data directory
	// ("" from a binary that used the name as ID).
	ID string `json:"i,omitempty"`
	// Since is when this node's process started (Unix seconds): the leader
	// prefers long-running nodes as voters.
	Since int64 `json:"a,omitempty"`
	// NoVote keeps the node out of the Raft quorum (--voter=never).
	NoVote bool `json:"nv,omitempty"`
	// Unhealthy says why the node cannot take work (its data directory or
	// Raft log cannot be written); "" when healthy.
	Unhealthy string `json:"u,omitempty"`
	// CatchingUp is set until the node's replica has applied everything the
	// mesh had committed when it started: it is given no work before.
	CatchingUp bool `json:"c,omitempty"`
	// Kinds says how the node runs each topic and which spawns it accepts
	// there: topic → "host", "agent" or "docker", followed by
	// "=RULE,RULE..." when its --topic-accept differs from the kind's
	// default (node/accept.go reads it). Absent for a topic: unknown.
	Kinds map[string]string `json:"k,omitempty"`
	// Schema is the newest ledger schema the node's binary applies
	// (raftfsm.LedgerSchema); absent: 1. The leader proposes a command only
	// once every voter knows its schema.
	Schema int `json:"ls,omitempty"`
	// Binary is the node's binary version (ourci-node version).
	Binary string `json:"bv,omitempty"`
	// EnvAllow lists, per topic, the --env names the node lets a spawn set
	// beyond the defaults (--topic-env-allow).
	EnvAllow map[string][]string `json:"ea,omitempty"`
}

// MaxReason bounds the Unhealthy reason a node gossips.
const MaxReason = 160

// Takes reports whether the node may be given new work: not draining, not
// unhealthy, caught up.
func (m Meta) Takes() bool { return !m.Draining && m.Unhealthy == "" && !m.CatchingUp }

// ErrMeta marks metadata that cannot be encoded or decoded.
var ErrMeta = errors.New("gossip: bad metadata")

// Subscribes reports whether the node serves topic.
func (m Meta) Subscribes(topic string) bool {
	_, ok := slices.BinarySearch(m.Topics, topic)
	return ok
}

// EncodeMeta returns the wire form of m, topics sorted.
func EncodeMeta(m Meta) ([]byte, error) {
	m.Version = MetaVersion
	m.Topics = slices.Sorted(slices.Values(m.Topics))
	if len(m.Unhealthy) > MaxReason {
		m.Unhealthy = strings.ToValidUTF8(m.Unhealthy[:MaxReason-3], "") + "..."
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMeta, err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, gossip carries at most %d (fewer or shorter topics)", ErrMeta, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses metadata gossiped by another node.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", ErrMeta)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", ErrMeta, err)
	}
	if m.Version < 1 {
		return Meta{}, fmt.Errorf("%w: version %d", ErrMeta, m.Version)
	}
	if m.Slots < 0 {
		return Meta{}, fmt.Errorf("%w: %d slots", ErrMeta, m.Slots)
	}
	m.Topics = slices.Sorted(slices.Values(m.Topics))
	return m, nil
}
