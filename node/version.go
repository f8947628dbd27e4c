package node

import (
	"fmt"
	"maps"
	"math"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/leader"
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

// voterSchema is the oldest ledger schema among the voters. A voter gossip
// does not list now counts with the schema it last gossiped to this node
// (seen; a node's binary goes forward, never back: a downgrade is not
// supported), and as 1 if it was never seen (it may come back on an old
// binary). Like Nomad's minimum-version check, which counts failed servers
// by their last tags: a dead voter does not hold every newer command back
// until the autopilot has removed it.
func voterSchema(servers []raft.Server, members []gossip.Member, seen map[raft.ServerID]int) (int, []string) {
	live := map[raft.ServerID]gossip.Member{}
	for _, m := range members {
		live[leader.MemberID(m)] = m
	}
	least := math.MaxInt
	var behind []string
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v, how := 1, ""
		if m, ok := live[s.ID]; ok {
			v = memberSchema(m)
		} else if last, ok := seen[s.ID]; ok {
			v, how = last, " (last seen)"
		}
		if v < least {
			least = v
		}
		behind = append(behind, fmt.Sprintf("%s:%d%s", leader.NameOfID(s.ID), v, how))
	}
	if least == math.MaxInt {
		least = raftfsm.LedgerSchema // no voter: a one-node mesh starting
	}
	return least, behind
}

// schemaSeen remembers the ledger schema each member gossips (voterSchema).
type schemaSeen struct {
	mu sync.Mutex
	m  map[raft.ServerID]int
}

// note records what members gossip now and returns a copy of all seen.
func (s *schemaSeen) note(members []gossip.Member) map[raft.ServerID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[raft.ServerID]int{}
	}
	for _, m := range members {
		s.m[leader.MemberID(m)] = memberSchema(m)
	}
	return maps.Clone(s.m)
}

// schemaReady refuses (ErrNotYet) a command that needs schema need while
// some voter's binary does not know it.
func (n *Node) schemaReady(need int) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("node: raft configuration: %w", err)
	}
	members := n.gossip.Members()
	least, voters := voterSchema(f.Configuration().Servers, members, n.schemas.note(members))
	if least >= need {
		return nil
	}
	return fmt.Errorf("%w: it needs ledger schema %d, and the voters run %s (upgrade every voter first)", ErrNotYet, need, strings.Join(voters, " "))
}

// ErrNotYet: a command needs a ledger schema some voter's binary does not
// know yet; it is held back until every voter runs one that does.
var ErrNotYet = leader.ErrNotYet
