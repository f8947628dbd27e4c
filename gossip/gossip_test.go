package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

func startAgent(t *testing.T, name string, key []byte, topics ...string) *Gossip {
	t.Helper()
	g, err := Start(Config{
		Name: name, Bind: "127.0.0.1:0", Key: key,
		Meta:   Meta{Raft: "127.0.0.1:1", HTTP: "127.0.0.1:2", Slots: 1, Topics: topics},
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { g.Shutdown() })
	return g
}

func TestMetadataSpreads(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	var gs []*Gossip
	for i := 0; i < 3; i++ {
		g := startAgent(t, "n"+strconv.Itoa(i), key)
		if i > 0 {
			if _, err := g.Join([]string{gs[0].Addr()}); err != nil {
				t.Fatal(err)
			}
		}
		gs = append(gs, g)
	}
	wait.For(t, 10*time.Second, "3 members everywhere", func() (bool, string) {
		for _, g := range gs {
			if n := len(g.Members()); n != 3 {
				return false, fmt.Sprintf("a node sees %d", n)
			}
		}
		return true, ""
	})
	watch := gs[2].Watch()
	if err := gs[0].SetMeta(Meta{Raft: "127.0.0.1:1", HTTP: "127.0.0.1:2", Slots: 5, Topics: []string{"ourci/test/esp-12e"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wait.For(t, 5*time.Second, "the new topic on every node", func() (bool, string) {
		for _, g := range gs {
			for _, m := range g.Members() {
				if m.Name == "n0" && (!m.Meta.Subscribes("ourci/test/esp-12e") || m.Meta.Slots != 5) {
					return false, fmt.Sprintf("%+v", m.Meta)
				}
			}
		}
		return true, ""
	})
	t.Logf("subscription change reached 3 nodes in %s", time.Since(start))
	select {
	case <-watch:
	case <-time.After(5 * time.Second):
		t.Error("got no change signal on n2, want one")
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := startAgent(t, "a", bytes.Repeat([]byte{1}, 32))
	b := startAgent(t, "b", bytes.Repeat([]byte{2}, 32))
	if _, err := b.Join([]string{a.Addr()}); err == nil {
		t.Fatal("join with another key: got nil error, want failure")
	}
	if n := len(a.Members()); n != 1 {
		t.Errorf("members of a: got %d, want 1", n)
	}
}
