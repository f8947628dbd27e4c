package node_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
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
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			// Say how the follow ended, so a cut stream is told from an
			// empty one.
			b = append(b, fmt.Sprintf("\n[test: the follow broke off: %v]", err)...)
		}
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

// TestTaskCredentialsMasked: a task that prints its own token, its
// BLOB_URL, a --secret-env value and another token (in its arguments) in
// every common form (as is, upper case, hex, percent-encoded, base64,
// split by colours, traced by a colourised set -x) leaves none of them in
// its stored or streamed log, nor in the node's note that names its
// arguments.
func TestTaskCredentialsMasked(t *testing.T) {
	const secret = "s3cr3t-deploy-key-0042"
	m := nodetest.Start(t, 2, func(i int, c *node.Config) {
		c.Topics = []node.Topic{{Name: "deploy", Secrets: map[string]string{"DEPLOY_KEY": secret}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	foreign, _ := m.Secret.OperatorToken(node.RoleOperate, time.Time{})
	script := `
p() { printf %s "$1"; }
hex() { p "$1" | od -An -tx1 -v | tr -d ' \n'; }
for v in "$OURCI_TOKEN" "$BLOB_URL" "$DEPLOY_KEY" "$FOREIGN"; do
	echo "plain=$v"
	echo "upper=$(p "$v" | tr a-z A-Z)"
	echo "hex=$(hex "$v")"
	echo "HEX=$(hex "$v" | tr a-f A-F)"
	echo "od:"; p "$v" | od -An -tx1
	echo "url=$(hex "$v" | sed 's/../%&/g')"
	echo "b64:"; p "$v" | base64
	echo "b64 in a line:"; echo "KEY=$v" | base64
	head=${v%????????????}
	printf 'ansi=%s\033[1;31m%s\033[0m\n' "$head" "${v#"$head"}"
done
PS4="$(printf '\033[36m+\033[0m ')"
set -x
: "$OURCI_TOKEN" ` + foreign + `
set +x
echo done`
	res, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "deploy", Args: []string{script}, Env: []string{"FOREIGN=" + foreign}, Key: "mask-creds"})
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
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			// Say how the follow ended, so a cut stream is told from an
			// empty one.
			b = append(b, fmt.Sprintf("\n[test: the follow broke off: %v]", err)...)
		}
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
	tok := m.Secret.TaskToken(res.Task, 1)
	capability := m.Secret.BlobToken(res.Job, res.Task, 1)
	var stream string
	select {
	case stream = <-streamed:
	case <-ctx.Done():
		t.Fatal("the followed log did not end within a minute of the job's end")
	}
	for name, log := range map[string]string{"stored": string(b), "streamed": stream} {
		flat := strings.ReplaceAll(log, "\n", "")
		for what, v := range map[string]string{"token": tok, "capability": capability, "secret": secret, "foreign token": foreign} {
			core := v[len(v)-16:] // a MAC's (or the secret's) last bytes
			for form, s := range map[string]string{
				"as is": core, "upper": strings.ToUpper(core), "hex": hex.EncodeToString([]byte(core)),
				"HEX": strings.ToUpper(hex.EncodeToString([]byte(core))), "base64": base64.StdEncoding.EncodeToString([]byte(v))[4:20],
			} {
				if strings.Contains(strings.ReplaceAll(flat, " ", ""), s) {
					t.Errorf("%s log shows the %s (%s: %q):\n%s", name, what, form, s, log)
				}
			}
		}
		if got := strings.Count(log, "***"); got < 4*9 || !strings.Contains(log, "done") || !strings.Contains(log, "plain=***") {
			t.Errorf("%s log: got %d masks, want at least 36 (9 forms of 4 values) and the output around them (%d bytes; the task ran on %s):\n%s", name, got, len(log), taskNode(m, res.Task), log)
		}
	}
}

// taskNode is the node the ledger shows task on, for a failure's message.
func taskNode(m *nodetest.Mesh, task string) string {
	node := "?"
	m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
		if t := s.Tasks[task]; t != nil {
			node = fmt.Sprintf("%s (attempt %d, %s)", t.Node, t.Attempt, t.State)
		}
	})
	return node
}
