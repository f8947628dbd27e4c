package leader

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
)

func voter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress("addr-" + id), Suffrage: raft.Voter}
}

func nonvoter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress("addr-" + id), Suffrage: raft.Nonvoter}
}

// alive is a live member whose Raft ID is id (NAME@hex or a bare name).
func alive(id string, since int64, mod ...func(*gossip.Meta)) gossip.Member {
	m := gossip.Member{Name: NameOfID(raft.ServerID(id)), Meta: gossip.Meta{ID: id, Raft: "addr-" + id, Since: since, Slots: 1}}
	for _, f := range mod {
		f(&m.Meta)
	}
	return m
}

func acts(as []apAction) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Kind.String()+" "+string(a.ID))
	}
	return strings.Join(out, ", ")
}

func TestPlanRaft(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	long := map[raft.ServerID]time.Time{"c@3": t0.Add(-time.Minute), "d@4": t0.Add(-time.Minute), "e@5": t0.Add(-time.Minute)}
	cases := []struct {
		name      string
		servers   []raft.Server
		members   []gossip.Member
		deadSince map[raft.ServerID]time.Time
		noTrust   bool
		lagging   string // a member CaughtUp says no for
		want      string
		pending   bool
	}{
		{
			name:    "a new member joins as a non-voter, not as a voter",
			servers: []raft.Server{voter("a@1")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			want:    "add non-voter b@2", pending: true,
		},
		{
			name:    "a caught-up non-voter is promoted while voters are few",
			servers: []raft.Server{voter("a@1"), nonvoter("b@2")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			want:    "promote to voter b@2",
		},
		{
			name:    "one that has not caught up waits",
			servers: []raft.Server{voter("a@1"), nonvoter("b@2")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			lagging: "b", want: "", pending: true,
		},
		{
			name:    "the longest-running candidate first, one a pass",
			servers: []raft.Server{voter("a@1"), nonvoter("b@2"), nonvoter("c@3")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 50), alive("c@3", 10)},
			want:    "promote to voter c@3", pending: true,
		},
		{
			name:    "never-voters, unhealthy, draining and catching-up members are not promoted",
			servers: []raft.Server{voter("a@1"), nonvoter("b@2"), nonvoter("c@3"), nonvoter("d@4"), nonvoter("e@5")},
			members: []gossip.Member{alive("a@1", 1),
				alive("b@2", 2, func(m *gossip.Meta) { m.NoVote = true }),
				alive("c@3", 3, func(m *gossip.Meta) { m.Unhealthy = "disk full" }),
				alive("d@4", 4, func(m *gossip.Meta) { m.Draining = true }),
				alive("e@5", 5, func(m *gossip.Meta) { m.CatchingUp = true })},
			want: "",
		},
		{
			name:    "a voter that turned --voter=never is demoted",
			servers: []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2, func(m *gossip.Meta) { m.NoVote = true }), alive("c@3", 3)},
			want:    "demote to non-voter b@2",
		},
		{
			name:    "no promotion beyond five voters",
			servers: []raft.Server{voter("a@1"), voter("b@2"), voter("c@3"), voter("d@4"), voter("e@5"), nonvoter("f@6")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2), alive("c@3", 3), alive("d@4", 4), alive("e@5", 5), alive("f@6", 6)},
			want:    "",
		},
		{
			name:    "a wiped node's old ID goes at once; the new one joins as a non-voter",
			servers: []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2), alive("c@9", 9)},
			want:    "remove c@3, add non-voter c@9", pending: true,
		},
		{
			name:    "the same for a data directory made before IDs (ID = name)",
			servers: []raft.Server{voter("a"), voter("b"), voter("c")},
			members: []gossip.Member{alive("a", 1), alive("b", 2), alive("c@9", 9)},
			want:    "remove c, add non-voter c@9", pending: true,
		},
		{
			name:      "a voter dead for DeadServerAfter is removed, and a non-voter promoted in its place",
			servers:   []raft.Server{voter("a@1"), voter("b@2"), voter("c@3"), voter("d@4"), voter("e@5"), nonvoter("f@6")},
			members:   []gossip.Member{alive("a@1", 1), alive("b@2", 2), alive("d@4", 4), alive("e@5", 5), alive("f@6", 6)},
			deadSince: map[raft.ServerID]time.Time{"c@3": t0.Add(-11 * time.Second)},
			want:      "remove c@3, promote to voter f@6",
		},
		{
			name:      "not before: the first sighting starts the clock",
			servers:   []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")},
			members:   []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			deadSince: map[raft.ServerID]time.Time{},
			want:      "",
		},
		{
			name:      "two dead voters go one a pass",
			servers:   []raft.Server{voter("a@1"), voter("b@2"), voter("c@3"), voter("d@4"), voter("e@5")},
			members:   []gossip.Member{alive("a@1", 1), alive("b@2", 2), alive("e@5", 5)},
			deadSince: long,
			want:      "remove c@3",
		},
		{
			name:      "no removal without a live majority of the voters",
			servers:   []raft.Server{voter("a@1"), voter("b@2"), voter("c@3"), voter("d@4"), voter("e@5")},
			members:   []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			deadSince: long,
			want:      "",
		},
		{
			name:      "a young leader's gossip is not trusted with absence",
			servers:   []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")},
			members:   []gossip.Member{alive("a@1", 1), alive("b@2", 2)},
			deadSince: long, noTrust: true,
			want: "",
		},
		{
			name:      "a dead non-voter stays for at least five minutes",
			servers:   []raft.Server{voter("a@1"), nonvoter("c@3")},
			members:   []gossip.Member{alive("a@1", 1)},
			deadSince: map[raft.ServerID]time.Time{"c@3": t0.Add(-time.Minute)},
			want:      "",
		},
		{
			name:      "and goes after",
			servers:   []raft.Server{voter("a@1"), nonvoter("c@3")},
			members:   []gossip.Member{alive("a@1", 1)},
			deadSince: map[raft.ServerID]time.Time{"c@3": t0.Add(-6 * time.Minute)},
			want:      "remove c@3",
		},
		{
			name:    "a new member at a dead server's address: the old one goes first",
			servers: []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2), alive("d@4", 4, func(m *gossip.Meta) { m.Raft = "addr-c@3" })},
			want:    "remove c@3, add non-voter d@4", pending: true,
		},
		{
			name:    "the leader is never removed or demoted",
			servers: []raft.Server{voter("a@1"), voter("b@2")},
			members: []gossip.Member{alive("a@9", 9, func(m *gossip.Meta) { m.NoVote = true }), alive("b@2", 2)},
			want:    "add non-voter a@9", pending: true,
		},
		{
			name:    "a voter that moved keeps its vote at the new address",
			servers: []raft.Server{voter("a@1"), voter("b@2")},
			members: []gossip.Member{alive("a@1", 1), alive("b@2", 2, func(m *gossip.Meta) { m.Raft = "addr-new" })},
			want:    "move voter b@2",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dead := map[raft.ServerID]time.Time{}
			for k, v := range c.deadSince {
				dead[k] = v
			}
			got, pending := planRaft(apInput{
				Servers: c.servers, Members: c.members, Self: "a@1", Now: t0, DeadSince: dead,
				TrustAbsence: !c.noTrust, DeadAfter: 10 * time.Second, MaxVoters: 5,
				CaughtUp: func(m gossip.Member) bool { return m.Name != c.lagging },
			})
			if acts(got) != c.want || pending != c.pending {
				t.Errorf("got [%s] pending %v, want [%s] pending %v", acts(got), pending, c.want, c.pending)
			}
		})
	}
}

// The first sighting of a dead server is remembered, and forgotten when it
// comes back.
func TestPlanRaftDeadClock(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dead := map[raft.ServerID]time.Time{}
	in := apInput{
		Servers: []raft.Server{voter("a@1"), voter("b@2"), voter("c@3")}, Self: "a@1",
		Members: []gossip.Member{alive("a@1", 1), alive("b@2", 2)}, DeadSince: dead,
		TrustAbsence: true, DeadAfter: 10 * time.Second, MaxVoters: 5,
	}
	for i, step := range []struct {
		after time.Duration
		want  string
	}{{0, ""}, {9 * time.Second, ""}, {10 * time.Second, "remove c@3"}} {
		in.Now = t0.Add(step.after)
		got, _ := planRaft(in)
		if acts(got) != step.want {
			t.Errorf("step %d (+%v): got [%s], want [%s]", i, step.after, acts(got), step.want)
		}
	}
	in.Members = append(in.Members, alive("c@3", 3))
	planRaft(in)
	if _, ok := dead["c@3"]; ok {
		t.Errorf("c@3 came back: got it still in DeadSince %v", dead)
	}
}
