package leader

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/nodetest/fakeledger"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

func takes(names ...string) []gossip.Member {
	var ms []gossip.Member
	for _, n := range names {
		ms = append(ms, gossip.Member{Name: n, Meta: gossip.Meta{Slots: 1}})
	}
	return ms
}

func TestPlanPulls(t *testing.T) {
	blob := func(size int64, holders ...string) *raftfsm.Blob {
		return &raftfsm.Blob{Size: size, Holders: holders}
	}
	draining := gossip.Member{Name: "d", Meta: gossip.Meta{Slots: 1, Draining: true}}
	tests := []struct {
		name     string
		blobs    map[string]*raftfsm.Blob
		members  []gossip.Member
		replicas int
		busy     string
		want     string
	}{
		{"enough holders", map[string]*raftfsm.Blob{"h1": blob(1, "a", "b")}, takes("a", "b", "c"), 2, "", "[]"},
		{"one short: to the member holding the fewest bytes",
			map[string]*raftfsm.Blob{"h1": blob(1, "a"), "big": blob(100, "b", "c")}, takes("a", "b", "c", "e"), 2, "", "[{h1 e}]"},
		{"a dead holder does not count", map[string]*raftfsm.Blob{"h1": blob(1, "a", "gone")}, takes("a", "b"), 2, "", "[{h1 b}]"},
		{"no live holder: nothing to copy from", map[string]*raftfsm.Blob{"h1": blob(1, "gone")}, takes("a", "b"), 2, "", "[]"},
		{"fewer members than replicas", map[string]*raftfsm.Blob{"h1": blob(1, "a")}, takes("a"), 3, "", "[]"},
		{"a draining member takes no copy", map[string]*raftfsm.Blob{"h1": blob(1, "a")}, append(takes("a"), draining), 2, "", "[]"},
		{"a pull in flight is left alone", map[string]*raftfsm.Blob{"h1": blob(1, "a"), "h2": blob(1, "a")}, takes("a", "b"), 2, "h1", "[{h2 b}]"},
		{"ties go to the name", map[string]*raftfsm.Blob{"h1": blob(1, "a")}, takes("a", "z", "m"), 2, "", "[{h1 m}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := raftfsm.NewState()
			for h, b := range tt.blobs {
				b.Hash = h
				s.Blobs[h] = b
			}
			got := fmt.Sprint(planPulls(s, tt.members, tt.replicas, func(h string) bool { return h == tt.busy }))
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestReplicationPullsOnceAndRetries: the duty asks for a pull of a blob
// short of holders, not again while it is in flight, and again after a
// failure once its backoff passed; it stops with its context.
func TestReplicationPullsOnceAndRetries(t *testing.T) {
	l := fakeledger.New()
	h1 := strings.Repeat("1", 64)
	if _, err := l.Apply(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: h1, Size: 1, Node: "a", At: epoch}}); err != nil {
		t.Fatal(err)
	}
	mem := newMembers("a", "b")
	var mu sync.Mutex
	var asked []string
	flying, most := 0, 0
	release := make(chan error)
	var wg sync.WaitGroup
	r := Replication{Ledger: l, Members: mem, Replicas: 2, Log: quiet, Backoff: time.Millisecond, Settle: time.Millisecond, Every: 10 * time.Millisecond,
		Go: func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() },
		Pull: func(ctx context.Context, member, hash string) error {
			mu.Lock()
			asked = append(asked, member+" "+hash)
			flying++
			most = max(most, flying)
			mu.Unlock()
			defer func() { mu.Lock(); flying--; mu.Unlock() }()
			select {
			case err := <-release:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	count := func() (int, string) { mu.Lock(); defer mu.Unlock(); return len(asked), fmt.Sprint(asked) }
	wait.For(t, 10*time.Second, "a pull of h1 to b", func() (bool, string) { n, s := count(); return n == 1, s })
	mem.set("a", "b") // the membership moves: the duty looks again, and leaves the pull in flight alone
	release <- fmt.Errorf("b: disk full")
	wait.For(t, 10*time.Second, "h1 asked again after the failure", func() (bool, string) { n, s := count(); return n == 2, s })
	if _, s := count(); s != "[b "+h1+" b "+h1+"]" {
		t.Errorf("pulls asked: got %s, want b twice, one at a time", s)
	}
	if mu.Lock(); most > 1 {
		t.Errorf("%d pulls of one blob in flight at once, want one", most)
	}
	mu.Unlock()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
	wg.Wait()
}
