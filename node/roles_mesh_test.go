package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
)

func TestOperatorTokenRoles(t *testing.T) {
	m := nodetest.Start(t, 1, func(i int, c *node.Config) { c.Topics = []node.Topic{{Name: "t"}} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read, _ := m.Secret.OperatorToken(node.RoleRead, time.Time{})
	operate, _ := m.Secret.OperatorToken(node.RoleOperate, time.Now().Add(time.Hour))
	expired, _ := m.Secret.OperatorToken(node.RoleOperate, time.Now().Add(-time.Second))
	client := func(tok string) *api.Client { return api.NewClient(m.Nodes[0].URL(), tok) }

	job, err := client(operate).Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"true"}})
	if err != nil {
		t.Fatalf("operate token spawns: %v", err)
	}
	if _, err := client(read).Job(ctx, job.Job, 0, 0); err != nil {
		t.Errorf("read token reads a job: %v", err)
	}
	if _, err := client(read).Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"true"}}); !api.IsCode(err, api.CodeForbidden) {
		t.Errorf("read token spawns: got %v, want forbidden", err)
	}
	if _, err := client(read).Cancel(ctx, job.Job); !api.IsCode(err, api.CodeForbidden) {
		t.Errorf("read token cancels: got %v, want forbidden", err)
	}
	if _, err := client(operate).Drain(ctx); !api.IsCode(err, api.CodeForbidden) {
		t.Errorf("operate token drains a node: got %v, want forbidden", err)
	}
	if _, err := client(expired).Status(ctx); !api.IsCode(err, api.CodeUnauthorized) {
		t.Errorf("expired token: got %v, want unauthorized", err)
	}
	forged := operate[:len(operate)-4] + "beef"
	if _, err := client(forged).Status(ctx); !api.IsCode(err, api.CodeUnauthorized) {
		t.Errorf("forged token: got %v, want unauthorized", err)
	}
	if _, err := m.Secret.OperatorToken("admin", time.Time{}); err == nil {
		t.Error("a token for an unknown role: got none refused, want an error")
	}
}
