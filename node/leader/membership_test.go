package leader

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/nodetest/wait"
)

// fakeConfig is a Raft configuration the Membership duty changes.
type fakeConfig struct {
	mu      sync.Mutex
	servers []raft.Server
	changes []string
}

type fakeFut struct {
	err error
	cfg raft.Configuration
}

func (f fakeFut) Error() error                      { return f.err }
func (f fakeFut) Index() uint64                     { return 0 }
func (f fakeFut) Configuration() raft.Configuration { return f.cfg }

func (c *fakeConfig) GetConfiguration() raft.ConfigurationFuture {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fakeFut{cfg: raft.Configuration{Servers: slices.Clone(c.servers)}}
}

func (c *fakeConfig) set(id raft.ServerID, addr raft.ServerAddress, s raft.ServerSuffrage, what string) raft.IndexFuture {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, what+" "+string(id))
	for i := range c.servers {
		if c.servers[i].ID == id {
			c.servers[i].Suffrage = s
			if addr != "" {
				c.servers[i].Address = addr
			}
			return fakeFut{}
		}
	}
	c.servers = append(c.servers, raft.Server{ID: id, Address: addr, Suffrage: s})
	return fakeFut{}
}

func (c *fakeConfig) AddNonvoter(id raft.ServerID, addr raft.ServerAddress, _ uint64, _ time.Duration) raft.IndexFuture {
	return c.set(id, addr, raft.Nonvoter, "add")
}

func (c *fakeConfig) AddVoter(id raft.ServerID, addr raft.ServerAddress, _ uint64, _ time.Duration) raft.IndexFuture {
	return c.set(id, addr, raft.Voter, "promote")
}

func (c *fakeConfig) DemoteVoter(id raft.ServerID, _ uint64, _ time.Duration) raft.IndexFuture {
	return c.set(id, "", raft.Nonvoter, "demote")
}

func (c *fakeConfig) RemoveServer(id raft.ServerID, _ uint64, _ time.Duration) raft.IndexFuture {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, "remove "+string(id))
	c.servers = slices.DeleteFunc(c.servers, func(s raft.Server) bool { return s.ID == id })
	return fakeFut{}
}

func (c *fakeConfig) state() (string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.servers), slices.Clone(c.changes)
}

// TestMembershipAddsPromotesAndRemoves: the duty, against a fake Raft
// configuration and membership, adds a new member as a non-voter,
// promotes it once it has caught up, and removes a voter dead past
// DeadAfter, on its manual clock; it stops with its context.
func TestMembershipAddsPromotesAndRemoves(t *testing.T) {
	mem, cfg := voters("dead", "a", "b")
	// c is alive too (a majority of voters is alive), dead is not.
	var caught sync.Map
	clk := clock.NewManual(epoch)
	d := Membership{Raft: cfg, Members: mem, Self: "a@1", DeadAfter: time.Minute, MaxVoters: 5,
		TrustAbsenceAt: epoch, Clock: clk, Log: quiet,
		CaughtUp: func(_ context.Context, m gossip.Member) bool { _, ok := caught.Load(m.Name); return ok }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()

	has := func(want ...string) func() (bool, string) {
		return func() (bool, string) {
			servers, changes := cfg.state()
			for _, w := range want {
				if !slices.Contains(changes, w) {
					return false, fmt.Sprintf("servers %s, changes %v", servers, changes)
				}
			}
			return true, ""
		}
	}
	wait.For(t, 10*time.Second, "b added as a non-voter", has("add b@1"))
	if _, changes := cfg.state(); slices.Contains(changes, "promote b@1") {
		t.Fatalf("b promoted before it caught up: %v", changes)
	}
	asleep := func() (bool, string) { return clk.Pending() > 0, "the duty is not waiting on its clock" }
	caught.Store("b", true)
	wait.For(t, 10*time.Second, "the duty to wait for b to catch up", asleep)
	clk.Advance(200 * time.Millisecond) // it looks again soon while a promotion is pending
	wait.For(t, 10*time.Second, "b promoted once caught up", has("promote b@1"))
	if _, changes := cfg.state(); slices.Contains(changes, "remove dead@1") {
		t.Fatalf("a voter removed before DeadAfter: %v", changes)
	}
	for removed := false; !removed; removed, _ = has("remove dead@1")() {
		if clk.Now().Sub(epoch) > 10*time.Minute {
			_, changes := cfg.state()
			t.Fatalf("dead voter not removed 10 minutes on: %v", changes)
		}
		wait.For(t, 10*time.Second, "the duty to wait on its clock again", asleep)
		clk.Advance(10 * time.Second)
	}
	if got := clk.Now().Sub(epoch); got < time.Minute {
		t.Errorf("dead voter removed %s after it was first seen dead, want at least DeadAfter (1m)", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
}

// A server gossip sees dead but that answers at its peer port is not
// removed; once it stops answering, it is, DeadAfter after that.
func TestMembershipKeepsADeadServerThatAnswers(t *testing.T) {
	mem, cfg := voters("flaky", "a")
	var answering atomic.Bool
	var asked atomic.Int32
	answering.Store(true)
	clk := clock.NewManual(epoch)
	d := Membership{Raft: cfg, Members: mem, Self: "a@1", DeadAfter: time.Minute, MaxVoters: 5,
		TrustAbsenceAt: epoch, Clock: clk, Log: quiet,
		CaughtUp: func(context.Context, gossip.Member) bool { return true },
		Answers: func(_ context.Context, node string) bool {
			asked.Add(1)
			return node == "flaky" && answering.Load()
		}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	asleep := func() (bool, string) { return clk.Pending() > 0, "the duty is not waiting on its clock" }
	for asked.Load() < 2 {
		if clk.Now().Sub(epoch) > 10*time.Minute {
			t.Fatalf("the flaky server was not asked twice in 10 minutes (asked %d)", asked.Load())
		}
		wait.For(t, 10*time.Second, "the duty to wait on its clock", asleep)
		clk.Advance(10 * time.Second)
	}
	if _, changes := cfg.state(); slices.Contains(changes, "remove flaky@1") {
		t.Fatalf("a server that answers was removed: %v", changes)
	}
	answering.Store(false)
	stopped := clk.Now()
	removed := func() bool { _, changes := cfg.state(); return slices.Contains(changes, "remove flaky@1") }
	for !removed() {
		if clk.Now().Sub(stopped) > 10*time.Minute {
			_, changes := cfg.state()
			t.Fatalf("not removed 10 minutes after it stopped answering: %v", changes)
		}
		wait.For(t, 10*time.Second, "the duty to wait on its clock again", asleep)
		clk.Advance(10 * time.Second)
	}
	cancel()
	<-done
}

// voters is a Raft configuration of three voters, a, gone and c, and the
// gossip members named live (c among them; gone is not).
func voters(gone string, live ...string) (*members, *fakeConfig) {
	mem := newMembers(live...)
	mem.ms = append(mem.ms, gossip.Member{Name: "c"})
	for i := range mem.ms {
		mem.ms[i].Meta.ID = mem.ms[i].Name + "@1"
		mem.ms[i].Meta.Raft = "addr-" + mem.ms[i].Name
		mem.ms[i].Meta.Slots = 1
	}
	return mem, &fakeConfig{servers: []raft.Server{
		{ID: "a@1", Address: "addr-a", Suffrage: raft.Voter},
		{ID: raft.ServerID(gone + "@1"), Address: raft.ServerAddress("addr-" + gone), Suffrage: raft.Voter},
		{ID: "c@1", Address: "addr-c", Suffrage: raft.Voter},
	}}
}
