package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the metadata encoding this binary writes.
const MetaVersion = 1

// Meta is what a node gossips about itself. It must encode to at most
// memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	Version  int      `json:"v"`
	Raft     string   `json:"r"`           // Raft address (host:port)
	HTTP     string   `json:"h"`           // API address (host:port)
	Slots    int      `json:"s"`           // tasks it runs at once
	Topics   []string `json:"t,omitempty"` // topics it subscribes to, sorted
	Draining bool     `json:"d,omitempty"` // takes no new tasks
}

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
