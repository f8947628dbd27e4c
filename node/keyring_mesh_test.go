package node_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest"
)

// The gossip key rotates on a live mesh without splitting it, survives a
// restart, and a node holding only the old key can no longer join.
func TestGossipKeyRotation(t *testing.T) {
	m := nodetest.Start(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw := make([]byte, 32)
	rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	old := base64.StdEncoding.EncodeToString(m.Secret.GossipKey())
	for _, step := range []struct{ op, key string }{{"install", key}, {"use", key}, {"remove", old}} {
		for i := range m.Nodes {
			if _, err := m.Client(i).Keyring(ctx, step.op, step.key); err != nil {
				t.Fatalf("%s on node %d: %v", step.op, i, err)
			}
		}
	}
	res, err := m.Client(0).Keyring(ctx, "", "")
	if err != nil || len(res.Keys) != 1 {
		t.Fatalf("keyring after rotation: got %v (%v), want one key", res.Keys, err)
	}
	// Gossip still carries changes between every node.
	if err := m.Nodes[2].SetOffer([]node.Topic{{Name: "rotated"}}, 3); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(10*time.Second, "the change on every node", func() (bool, string) {
		for i, n := range m.Nodes {
			for _, mb := range n.Status().Members {
				if mb.Name == "node2" && (len(mb.Topics) != 1 || mb.Topics[0] != "rotated") {
					return false, fmt.Sprintf("node %d sees %v", i, mb.Topics)
				}
			}
		}
		return true, ""
	})
	// A node restarted on its data dir rejoins with the rotated ring.
	cfg := m.Config(1)
	cfg.Peers = []string{m.Nodes[0].GossipAddr()}
	m.Nodes[1].Close()
	m.Restart(1, cfg)
	m.WaitFor(20*time.Second, "node1 back in the mesh", func() (bool, string) {
		st := m.Nodes[0].Status()
		for _, mb := range st.Members {
			if mb.Name == "node1" && mb.Alive {
				return true, ""
			}
		}
		return false, "node1 not alive"
	})
	// Only the old key: refused.
	stranger, err := gossip.Start(gossip.Config{Name: "stranger", Bind: "127.0.0.1:0", Key: m.Secret.GossipKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Shutdown()
	if _, err := stranger.Join([]string{m.Nodes[0].GossipAddr()}); err == nil {
		t.Error("a node with the removed key joined, want it refused")
	}
}
