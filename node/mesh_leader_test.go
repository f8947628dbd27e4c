package node_test

import (
	"log/slog"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
)

// TestRequestWaitsForOwnLeadership checks that a write reaching a node
// while the mesh has no leader waits for one (the API waits up to 5s) and
// is then served, also when the node that becomes leader is the one
// holding the request. A lone new node is still electing itself for the
// first half second or so after Start, which makes that case certain.
// The spawn carries no idempotency key, so the client sends it once.
func TestRequestWaitsForOwnLeadership(t *testing.T) {
	secret := node.NewSecret()
	n, err := node.Start(node.Config{
		Name: "solo", DataDir: t.TempDir(), Secret: secret, Slots: 1,
		Bind: "127.0.0.1:0", Raft: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	leading := n.IsLeader()

	c := api.NewClient(n.URL(), secret.ClusterToken())
	r, err := c.Spawn(testCtx(t), api.SpawnRequest{Topic: "t", Args: []string{"true"}})
	if err != nil {
		t.Fatalf("spawn sent while the node (leader at send: %v) was electing itself: got %v, want it served once the node leads", leading, err)
	}
	if d := job(t, c, r.Job); len(d.Tasks) != 1 || d.Tasks[0].ID != r.Task {
		t.Errorf("job %s: got tasks %+v, want only %s", r.Job, d.Tasks, r.Task)
	}
}
