package node

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

func voter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress("addr-" + id), Suffrage: raft.Voter}
}

func nonvoter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress("addr-" + id), Suffrage: raft.Nonvoter}
}

// alive is a live member whose Raft ID is id (NAME@hex or a bare name).
func alive(id string, since int64, mod ...func(*gossip.Meta)) gossip.Member {
	m := gossip.Member{Name: leader.NameOfID(raft.ServerID(id)), Meta: gossip.Meta{ID: id, Raft: "addr-" + id, Since: since, Slots: 1}}
	for _, f := range mod {
		f(&m.Meta)
	}
	return m
}

// A command of a newer ledger schema waits until every voter knows it; a
// voter gossip does not see counts as the oldest schema, and non-voters do
// not count.
func TestVoterSchema(t *testing.T) {
	next := raftfsm.LedgerSchema + 1
	schema := func(v int) func(*gossip.Meta) { return func(m *gossip.Meta) { m.Schema = v } }
	cases := []struct {
		name    string
		servers []raft.Server
		members []gossip.Member
		seen    map[raft.ServerID]int // what members gossiped before
		want    int
	}{
		{"every voter on this schema", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(raftfsm.LedgerSchema)), alive("b@2", 2, schema(raftfsm.LedgerSchema))}, nil, raftfsm.LedgerSchema},
		{"a voter from before schemas were gossiped", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next)), alive("b@2", 2)}, nil, 1},
		{"an old non-voter does not hold it back", []raft.Server{voter("a@1"), nonvoter("b@2")}, []gossip.Member{alive("a@1", 1, schema(raftfsm.LedgerSchema)), alive("b@2", 2)}, nil, raftfsm.LedgerSchema},
		{"a dead voter never seen counts as old", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next))}, nil, 1},
		{"a dead voter counts as what it last gossiped", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next))}, map[raft.ServerID]int{"b@2": next}, next},
		{"a dead voter last seen old holds it back", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next))}, map[raft.ServerID]int{"b@2": 1}, 1},
		{"what a live voter gossips now wins over what it did", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next)), alive("b@2", 2)}, map[raft.ServerID]int{"b@2": next}, 1},
		{"every voter on the next schema", []raft.Server{voter("a@1"), voter("b@2")}, []gossip.Member{alive("a@1", 1, schema(next)), alive("b@2", 2, schema(next+1))}, nil, next},
	}
	for _, c := range cases {
		if got, _ := voterSchema(c.servers, c.members, c.seen); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}
