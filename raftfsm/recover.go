package raftfsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrRecover marks a disaster recovery refused before anything changed.
var ErrRecover = errors.New("raftfsm: recover")

// NodeIDFile is the file in a data directory that holds the node's Raft
// server ID (one line). A directory without it uses the node's name.
const NodeIDFile = "node-id"

// NodeID returns the Raft server ID of the node whose data directory is
// dir: the first line of dir/node-id, or name if there is no such file.
func NodeID(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, NodeIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return name, nil
	}
	if err != nil {
		return "", fmt.Errorf("raftfsm: node ID: %w", err)
	}
	id, _, _ := strings.Cut(string(b), "\n")
	if id = strings.TrimSpace(id); id == "" {
		return "", fmt.Errorf("raftfsm: node ID: %s is empty", filepath.Join(dir, NodeIDFile))
	}
	return id, nil
}

// Server is one member of a Raft configuration.
type Server struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

func servers(c raft.Configuration) []Server {
	out := make([]Server, 0, len(c.Servers))
	for _, s := range c.Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// Recovery is what Recover did.
type Recovery struct {
	Node   string   `json:"node"`   // this node's Raft server ID
	Before []Server `json:"before"` // the last configuration the directory held
	After  []Server `json:"after"`  // the configuration it holds now: voters only
	Index  uint64   `json:"index"`  // the last log index, now a snapshot
}

// Recover rewrites the Raft configuration in the data directory of a
// stopped node, whose server ID is id, so that the servers named by voters
// are the mesh's only voters: the disaster recovery of a mesh that lost
// its quorum for good (raft.RecoverCluster). Every entry of the node's log
// is taken as committed and applied into a new snapshot that carries the
// new configuration; the log is then emptied.
//
// A name matches a server of the last configuration whose ID is the name,
// or starts with the name and "@" (IDs of the form NAME@SUFFIX); it must
// match exactly one. No voters means this node alone; this node must be
// one of them. Each voter keeps its address from that configuration. Run
// it, with the same voters, on every node named, all of them stopped,
// then start them.
//
// A directory in use fails with ErrInUse, a damaged one with ErrDamaged
// (both DataError); a refusal (no state, an unknown or ambiguous name)
// with ErrRecover; in all these cases nothing changed.
func Recover(dir, id string, voters []string) (Recovery, error) {
	rec := Recovery{Node: id}
	st, err := inspect(dir, nil)
	if err != nil {
		return rec, err
	}
	if !st.hasDB || !st.hasState() {
		return rec, fmt.Errorf("%w: %s holds no Raft state: this node never was part of a mesh", ErrRecover, dir)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return rec, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	conf := func() *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(id)
		c.Logger = hclog.NewNullLogger()
		return c
	}
	_, trans := raft.NewInmemTransport("")
	last, err := lastConfiguration(dir, conf(), snaps, trans)
	if err != nil {
		return rec, err
	}
	rec.Before = servers(last)
	if len(voters) == 0 {
		voters = []string{id}
	}
	var next raft.Configuration
	for _, name := range voters {
		var found []raft.Server
		for _, s := range last.Servers {
			if string(s.ID) == name || strings.HasPrefix(string(s.ID), name+"@") {
				found = append(found, s)
			}
		}
		switch {
		case len(found) == 0:
			return rec, fmt.Errorf("%w: no server %q in the last configuration this node knows (%s)", ErrRecover, name, ids(last))
		case len(found) > 1:
			return rec, fmt.Errorf("%w: %q names %d servers of the last configuration (%s): give the whole ID", ErrRecover, name, len(found), ids(last))
		case slices.ContainsFunc(next.Servers, func(s raft.Server) bool { return s.ID == found[0].ID }):
			return rec, fmt.Errorf("%w: %s is named twice", ErrRecover, found[0].ID)
		}
		next.Servers = append(next.Servers, raft.Server{ID: found[0].ID, Address: found[0].Address, Suffrage: raft.Voter})
	}
	if !slices.ContainsFunc(next.Servers, func(s raft.Server) bool { return string(s.ID) == id }) {
		return rec, fmt.Errorf("%w: this node (%s) is not among the voters named: it would have no vote in the mesh it recovers", ErrRecover, id)
	}
	rec.After = servers(next)
	store, err := openStore(dir)
	if err != nil {
		return rec, err
	}
	defer store.Close()
	if err := raft.RecoverCluster(conf(), NewFSM(), store, store, snaps, trans, next); err != nil {
		return rec, fmt.Errorf("raftfsm: recover: %w", err)
	}
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		rec.Index = list[0].Index
	}
	return rec, nil
}

// lastConfiguration reads the configuration dir's log and snapshots hold,
// with raft.db opened read-only (opening it for writing commits a
// transaction).
func lastConfiguration(dir string, conf *raft.Config, snaps raft.SnapshotStore, trans raft.Transport) (c raft.Configuration, err error) {
	path := filepath.Join(dir, raftDB)
	defer func() {
		if p := recover(); p != nil {
			err = damaged(dir, path, fmt.Sprintf("reading it failed: %v", p), nil)
		}
	}()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: lockWait}})
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		return c, &DataError{Dir: dir, File: path, Kind: ErrInUse, Err: err}
	case err != nil:
		return c, fmt.Errorf("raftfsm: open %s: %w", path, err)
	}
	defer store.Close()
	conf.NoSnapshotRestoreOnStart = true // only the configuration is wanted
	c, err = raft.GetConfiguration(conf, NewFSM(), store, readOnlyStable{store}, snaps, trans)
	if err != nil {
		return c, fmt.Errorf("raftfsm: recover: read the last configuration: %w", err)
	}
	return c, nil
}

// readOnlyStable is a read-only BoltStore as raft's stable store for
// raft.GetConfiguration, which writes back the current term it read: a
// write of the value already there is a no-op, any other is refused.
type readOnlyStable struct{ *raftboltdb.BoltStore }

func (s readOnlyStable) SetUint64(key []byte, v uint64) error {
	cur, err := s.BoltStore.GetUint64(key)
	if (err == nil && cur == v) || (errors.Is(err, raftboltdb.ErrKeyNotFound) && v == 0) {
		return nil
	}
	return fmt.Errorf("raftfsm: recover: reading the configuration, raft wrote %s", key)
}

func (s readOnlyStable) Set(key, _ []byte) error {
	return fmt.Errorf("raftfsm: recover: reading the configuration, raft wrote %s", key)
}

func ids(c raft.Configuration) string {
	var out []string
	for _, s := range c.Servers {
		role := "voter"
		if s.Suffrage != raft.Voter {
			role = "non-voter"
		}
		out = append(out, fmt.Sprintf("%s %s at %s", s.ID, role, s.Address))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
