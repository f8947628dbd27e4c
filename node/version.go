package node

import (
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/raftfsm"
)

// Version is this binary's version: the module version, or the VCS
// revision it was built from (with "+dirty" for uncommitted changes).
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// memberSchema is the ledger schema a member gossips (1 for binaries from
// before schemas were gossiped).
func memberSchema(m gossip.Member) int { return max(m.Meta.Schema, 1) }

// voterSchema is the oldest ledger schema among the voters: a voter gossip
// does not see counts as 1 (it may come back on an old binary).
func voterSchema(servers []raft.Server, members []gossip.Member) (int, []string) {
	live := map[raft.ServerID]gossip.Member{}
	for _, m := range members {
		live[memberID(m)] = m
	}
	least := math.MaxInt
	var behind []string
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v := 1
		if m, ok := live[s.ID]; ok {
			v = memberSchema(m)
		}
		if v < least {
			least = v
		}
		behind = append(behind, fmt.Sprintf("%s:%d", nameOfID(s.ID), v))
	}
	if least == math.MaxInt {
		least = raftfsm.LedgerSchema // no voter: a one-node mesh starting
	}
	return least, behind
}

// schemaReady refuses (ErrNotYet) a command that needs schema need while
// some voter's binary does not know it.
func (n *Node) schemaReady(need int) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("node: raft configuration: %w", err)
	}
	least, voters := voterSchema(f.Configuration().Servers, n.gossip.Members())
	if least >= need {
		return nil
	}
	return fmt.Errorf("%w: it needs ledger schema %d, and the voters run %s (upgrade every voter first)", ErrNotYet, need, strings.Join(voters, " "))
}
