package node_test

import (
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
)

// A node-side secret reaches the topic's tasks, and neither it nor its
// base64 form appears in the stored or the streamed log.
func TestSecretEnvIsMasked(t *testing.T) {
	const secret = "s3cr3t-deploy-key-0042"
	m := nodetest.Start(t, 2, func(i int, c *node.Config) {
		c.Topics = []node.Topic{{Name: "deploy", Secrets: map[string]string{"DEPLOY_KEY": secret}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := `echo "key=$DEPLOY_KEY"; printf %s "$DEPLOY_KEY" | base64; printf 'half=%.8s' "$DEPLOY_KEY"; echo; echo done`
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "deploy", Args: []string{script}, Env: []string{"DEPLOY_KEY=overridden"}, Key: "mask"})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan string, 1)
	go func() {
		rc, err := m.Client(1).Log(ctx, res.Task, true)
		if err != nil {
			streamed <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		streamed <- string(b)
	}()
	d := m.WaitJob(0, res.Job, 30*time.Second)
	if d.Job.Status != "passed" {
		t.Fatalf("job: got %s, want passed", d.Job.Status)
	}
	rc, err := m.Client(0).Log(ctx, res.Task, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	for name, log := range map[string]string{"stored": string(b), "streamed": <-streamed} {
		if strings.Contains(log, secret) || strings.Contains(log, base64.StdEncoding.EncodeToString([]byte(secret))) {
			t.Errorf("%s log shows the secret:\n%s", name, log)
		}
		if !strings.Contains(log, "key=***") || !strings.Contains(log, "done") || !strings.Contains(log, "half=s3cr3t-d") {
			t.Errorf("%s log: got\n%s\nwant key=*** (the task got the node's value, not its --env), the partial prefix and done", name, log)
		}
	}
}
