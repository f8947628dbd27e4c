package nodetest

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest/ports"
)

// A node whose port another socket holds starts once the socket lets go,
// not failing the test: the start is made again, and a failed start
// leaves nothing behind (its data directory opens again).
func TestStartNodeWaitsForATakenPort(t *testing.T) {
	p, err := ports.Reserve("127.0.0.1", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ports.Release(p...)
	addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(p[k]) }
	for _, tt := range []struct {
		name  string
		taken int // index in p of the port a stranger holds
	}{
		{"the HTTP port (bound last)", 2},
		{"the peer port (bound first)", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", addr(tt.taken))
			if err != nil {
				t.Fatal(err)
			}
			const hold = 500 * time.Millisecond
			time.AfterFunc(hold, func() { l.Close() })
			cfg := node.Config{
				Name: "node0", DataDir: filepath.Join(t.TempDir(), "node0"),
				Bind: addr(0), Raft: addr(1), HTTP: addr(2),
				Secret: node.NewSecret(), Logger: testLogger(t), Grace: 2 * time.Second,
			}
			start := time.Now()
			n := StartNode(t, cfg, 30*time.Second)
			defer n.Close()
			if took := time.Since(start); took < hold {
				t.Errorf("started after %s, before the stranger let go of %s (%s)", took, addr(tt.taken), hold)
			}
			if got, want := n.GossipAddr(), addr(0); got != want {
				t.Errorf("gossip address %s, want %s", got, want)
			}
		})
	}
}
