package e2e

// The credential attacks of issue 15 on real ourci-node processes:
// (2, 12) a task's token and BLOB_URL printed in a log, in many forms, for
// a read token's holder to take; (3) a task reading other jobs; (14) a
// metrics scraper holding a token that can run code; (13) garbage aimed at
// the gossip port filling the log.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

func TestAttackCredentialsOnRealNodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	leak := filepath.Join(dir, "leak") // what the task knows, written outside its log
	gate := filepath.Join(dir, "gate")
	m := startMesh(t, []nodeSpec{{Name: "cred1", Topics: []string{"e2e/cred"}}, {Name: "cred2", Topics: []string{"e2e/cred"}}})
	mkToken := func(role string) string {
		out, err := exec.Command(binPath, "token", "create", "--role", role, "--secret-file", m.secretFile).Output()
		if err != nil {
			t.Fatalf("token create --role %s: %v", role, err)
		}
		return strings.TrimSpace(string(out))
	}
	readTok, metricsTok := mkToken("read"), mkToken("metrics")
	if readTok == "" || metricsTok == "" {
		t.Fatal("token create gave no token")
	}

	// Another job, with a repository and a blob, that the attacker must not see.
	other := m.run(t, "spawn", "--json", "-t", "e2e/cred", "--", "while [ ! -e "+gate+" ]; do sleep 0.1; done")
	var otherJob struct{ Job, Task string }
	json.Unmarshal([]byte(other.stdout), &otherJob)
	secretFile := filepath.Join(dir, "other-artifact")
	os.WriteFile(secretFile, []byte("firmware of another team"), 0o644)
	put := m.run(t, "blob", "put", "--json", "--job", otherJob.Job, "--name", "theirs.bin", secretFile)
	var otherBlob struct{ Ref string }
	json.Unmarshal([]byte(put.stdout), &otherBlob)

	script := `set -x
printf '%s\n%s\n' "$OURCI_TOKEN" "$BLOB_URL" > ` + leak + `
echo "token=$OURCI_TOKEN url=$BLOB_URL"
printf %s "$OURCI_TOKEN" | od -An -tx1 | tr -d ' \n'; echo
printf %s "$BLOB_URL" | tr a-z A-Z; echo
printf %s "$OURCI_TOKEN" | base64
printf 'ansi=%s\033[31m%s\033[0m\n' "${OURCI_TOKEN%??????????}" "${OURCI_TOKEN#"${OURCI_TOKEN%??????????}"}"
curl -s -H "Authorization: Bearer $OURCI_TOKEN" "$OURCI_NODE/v1/status" > status.json; cat status.json | tr -d '\n' | head -c 4000; echo
curl -s -o /dev/null -w "other blob by hash: %{http_code}\n" "$BLOB_URL/` + strings.TrimPrefix(otherBlob.Ref, "sha256:") + `"
curl -s -o /dev/null -w "other job: %{http_code}\n" -H "Authorization: Bearer $OURCI_TOKEN" "$OURCI_NODE/v1/jobs/` + otherJob.Job + `"
while [ ! -e ` + gate + `.2 ]; do sleep 0.1; done`
	res := m.run(t, "spawn", "--json", "-t", "e2e/cred", "--", script)
	var job struct{ Job, Task string }
	if err := json.Unmarshal([]byte(res.stdout), &job); err != nil || job.Task == "" {
		t.Fatalf("spawn: %v", res)
	}
	wait.For(t, 30*time.Second, "the task to write its credentials", func() (bool, string) {
		b, _ := os.ReadFile(leak)
		return bytes.Count(b, []byte("\n")) == 2, "the task has not written its credentials yet"
	})
	b, _ := os.ReadFile(leak)
	creds := strings.Fields(string(b))
	token, blobURL := creds[0], creds[1]
	capability := blobURL[strings.LastIndex(blobURL, "/")+1:]

	// (2, 12) A read token's holder reads the running task's log, streamed
	// and stored, through the other node: no credential in any form.
	wait.For(t, 30*time.Second, "the complete log of the task", func() (bool, string) {
		r := m.runOn(t, 1, "logs", job.Task)
		return strings.Contains(r.stdout, "\nother job: "), "the log is not complete yet"
	})
	os.WriteFile(filepath.Join(dir, "read.token"), []byte(readTok), 0o600)
	lg := runWithToken(t, m, 1, filepath.Join(dir, "read.token"), "logs", job.Task)
	for _, form := range []string{token, capability, strings.ToUpper(capability), fmt.Sprintf("%x", token), strings.Split(token, ".")[3]} {
		if strings.Contains(lg.stdout, form) {
			t.Errorf("the task's log, read with a read token, holds a credential (%.20s…):\n%s", form, lg.stdout)
		}
	}
	if !strings.Contains(lg.stdout, "***") {
		t.Errorf("the log shows no masking at all:\n%s", lg.stdout)
	}
	// (3) The task saw only its own job, and none of the other's blobs.
	if strings.Contains(lg.stdout, `"id": "`+otherJob.Job+`"`) || strings.Contains(lg.stdout, "other team") {
		t.Errorf("the task's status listed the other job:\n%s", lg.stdout)
	}
	for _, want := range []string{"other blob by hash: 404", "other job: 403"} {
		if !strings.Contains(lg.stdout, want) {
			t.Errorf("the task's log lacks %q:\n%s", want, lg.stdout)
		}
	}
	// (2) A leaked BLOB_URL's capability cannot spawn.
	req, _ := http.NewRequest(http.MethodPost, m.nodes[0].url+"/v1/spawn", strings.NewReader(`{"topic":"e2e/cred","args":["id"]}`))
	req.Header.Set("Authorization", "Bearer "+capability)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("spawn with the BLOB_URL capability: got %v %v, want 403", status(resp), err)
	}
	// (14) A metrics token scrapes and does nothing else.
	for _, c := range []struct {
		path string
		want int
	}{{"/metrics", 200}, {"/v1/status", 403}, {"/v1/tasks/" + job.Task + "/log", 403}} {
		req, _ := http.NewRequest(http.MethodGet, m.nodes[0].url+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+metricsTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != c.want {
			t.Errorf("GET %s with a metrics token: got %v %v, want %d", c.path, status(resp), err, c.want)
		}
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	os.WriteFile(gate, nil, 0o600)
	os.WriteFile(gate+".2", nil, 0o600)
	m.run(t, "status", "--watch", job.Job)
}

// (13) Garbage at the gossip port is counted and logged at most once per
// source per interval, not once per packet.
func TestAttackGossipGarbage(t *testing.T) {
	t.Parallel()
	m := startMesh(t, []nodeSpec{{Name: "noise1"}})
	before := strings.Count(tail(m.nodes[0].logPath, 100000), "memberlist")
	conn, err := net.Dial("udp", m.nodes[0].gossip)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		conn.Write([]byte(fmt.Sprintf("garbage %d \x00\x01\x02", i)))
	}
	conn.Close()
	wait.For(t, 20*time.Second, "status to answer", func() (bool, string) {
		r := m.run(t, "status")
		return r.code == 0, r.String()
	})
	if n := strings.Count(tail(m.nodes[0].logPath, 100000), "memberlist") - before; n > 5 {
		t.Errorf("2000 garbage packets wrote %d memberlist log lines, want at most a few", n)
	}
	// They were seen, and counted.
	req, _ := http.NewRequest(http.MethodGet, m.nodes[0].url+"/metrics", nil)
	tok, _ := exec.Command(binPath, "token", "--secret-file", m.secretFile).Output()
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	counted := false
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "ourci_gossip_bad_packets_total "); ok && v != "0" {
			counted = true
		}
	}
	if !counted {
		t.Errorf("ourci_gossip_bad_packets_total did not rise")
	}
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.Status + " " + strings.TrimSpace(string(b))
}

// runWithToken runs the CLI against node i with --token-file instead of the
// cluster secret.
func runWithToken(t *testing.T, m *mesh, i int, tokenFile string, args ...string) result {
	t.Helper()
	r := m.runOn(t, i, append(args, "--token-file", tokenFile)...)
	return r
}
