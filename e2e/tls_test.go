package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// tlsCLI runs `ourci-node tls ARGS...` and returns what it gave.
func tlsCLI(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"tls"}, args...)...)
	cmd.Env = cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ourci-node tls %q: %v", args, err)
	}
	return r
}

// TestMeshWithItsOwnCA: an operator makes a CA whose key stays off the
// nodes and issues each node its certificate; the mesh runs a job across
// nodes (forwarded spawns, relayed logs, Raft: all on the mutual-TLS peer
// port). A client certificate, a certificate for another node's name, and a
// node holding the cluster secret but no certificate of this CA cannot take
// part.
func TestMeshWithItsOwnCA(t *testing.T) {
	t.Parallel()
	certs := filepath.Join(t.TempDir(), "certs")
	if r := tlsCLI(t, "ca", "--out", certs); r.code != 0 {
		t.Fatalf("tls ca: %v", r)
	}
	for _, name := range []string{"node1", "node2", "node3"} {
		if r := tlsCLI(t, "cert", name, "--ca", certs, "--out", certs); r.code != 0 {
			t.Fatalf("tls cert %s: %v", name, r)
		}
	}
	if r := tlsCLI(t, "cert", "alice", "--client", "--ca", certs, "--out", certs); r.code != 0 {
		t.Fatalf("tls cert alice --client: %v", r)
	}
	for _, f := range []string{"ca-key.pem", "node1-key.pem", "alice-key.pem"} {
		if fi, err := os.Stat(filepath.Join(certs, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v (err %v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
	// Certificates are never overwritten.
	before, _ := os.ReadFile(filepath.Join(certs, "node1.pem"))
	if r := tlsCLI(t, "cert", "node1", "--ca", certs, "--out", certs); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("tls cert node1 again: got %v, want a refusal naming the existing file", r)
	}
	if after, _ := os.ReadFile(filepath.Join(certs, "node1.pem")); !bytes.Equal(before, after) {
		t.Errorf("tls cert node1 again changed node1.pem")
	}

	// The nodes get the CA certificate and their own pair, not the CA key.
	nodeCerts := filepath.Join(t.TempDir(), "node-certs")
	os.MkdirAll(nodeCerts, 0o700)
	for _, f := range []string{"ca.pem", "node1.pem", "node1-key.pem", "node2.pem", "node2-key.pem", "node3.pem", "node3-key.pem", "alice.pem", "alice-key.pem"} {
		b, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(nodeCerts, f), b, 0o600)
	}
	tlsDir := []string{"--tls-dir", nodeCerts}
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{"tls/one"}, Flags: tlsDir},
		{Name: "node2", Topics: []string{"tls/two"}, Flags: tlsDir},
		{Name: "node3", Topics: []string{"tls/three"}, Flags: tlsDir},
	})

	// Spawned through node1 (a follower or the leader), run on node2, whose
	// child runs on node3; logs read through node1 come from the others.
	job, _ := m.spawn(t, 0, "-t", "tls/two", "--", "echo two says hi && ourci-node spawn -t tls/three -- echo three says hi")
	v := m.waitClosed(t, 0, job, time.Minute)
	if v.Job.Status != "passed" || len(v.Tasks) != 2 {
		t.Fatalf("job over the mesh's own CA: want 2 tasks, passed: %v", v)
	}
	for _, tv := range v.Tasks {
		r := m.runOn(t, 0, "logs", tv.ID)
		if want := map[string]string{"node2": "two says hi", "node3": "three says hi"}[tv.Node]; r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("logs of %s (ran on %s) through node1: got %v, want %q", tv.ID, tv.Node, r, want)
		}
	}

	// Nodes that must not start, each with a clear error.
	refused := []struct {
		name     string
		flags    []string
		wantCode int
		wantErr  string
	}{
		{"a client certificate as a node's", []string{"--name", "node4", "--tls-ca", filepath.Join(nodeCerts, "ca.pem"),
			"--tls-cert", filepath.Join(nodeCerts, "alice.pem"), "--tls-key", filepath.Join(nodeCerts, "alice-key.pem")}, 4, "cannot act as a node"},
		{"another node's certificate", []string{"--name", "node5", "--tls-ca", filepath.Join(nodeCerts, "ca.pem"),
			"--tls-cert", filepath.Join(nodeCerts, "node1.pem"), "--tls-key", filepath.Join(nodeCerts, "node1-key.pem")}, 2, `certificate is for node "node1"`},
		{"a certificate without its key", []string{"--name", "node6", "--tls-ca", filepath.Join(nodeCerts, "ca.pem"),
			"--tls-cert", filepath.Join(nodeCerts, "node2.pem")}, 4, "go together"},
	}
	for _, tt := range refused {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := append([]string{"join", "--data-dir", filepath.Join(t.TempDir(), "d"), "--bind", "127.0.0.1:0",
			"--secret-file", m.secretFile, "--peer", m.nodes[0].gossip}, tt.flags...)
		cmd := exec.CommandContext(ctx, binPath, args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tt.wantCode || !strings.Contains(string(out), tt.wantErr) {
			t.Errorf("join with %s: got exit %d and %q, want exit %d mentioning %q", tt.name, code, out, tt.wantCode, tt.wantErr)
		}
	}

	// A node with the cluster secret but without a certificate of this CA
	// (it derives its own from the secret) joins gossip, but Raft refuses
	// it: it never sees a leader, and the mesh counts the refusals.
	stranger := &node{
		spec:    nodeSpec{Name: "stranger", Topics: []string{"tls/stranger"}},
		logPath: filepath.Join(m.dir, "stranger.log"),
	}
	stranger.setPorts(freePorts(t, 1))
	m.nodes = append(m.nodes, stranger)
	m.startBound(t, len(m.nodes)-1)
	wait.For(t, 30*time.Second, "node1 to see the stranger in gossip", func() (bool, string) {
		st, err := m.meshStatus(t, 0)
		if err != nil {
			return false, err.Error()
		}
		_, ok := st.member("stranger")
		return ok, "node1 does not see the stranger in gossip yet"
	})
	wait.For(t, 30*time.Second, "a peer port to refuse the stranger", func() (bool, string) {
		sum := 0
		for i := range m.nodes {
			sum += peerRefused(t, m, i)
		}
		return sum > 0, "no peer port refused anything yet"
	})
	st, err := m.meshStatus(t, len(m.nodes)-1)
	if err != nil {
		t.Fatalf("stranger's status: %v", err)
	}
	if st.Leader != "" {
		t.Errorf("stranger: got leader %q, want none (it is not in Raft)", st.Leader)
	}
	if r := m.runOn(t, len(m.nodes)-1, "status", "--json", job); r.code != 5 {
		t.Errorf("job %s on the stranger: got %v, want exit 5 (its replica never received the ledger)", job, r)
	}
}

// peerRefused reads ourci_peer_refused_total from node i's /metrics: the
// connections its peer port refused.
func peerRefused(t *testing.T, m *mesh, i int) int {
	t.Helper()
	v, ok := metricValue(t, m, i, "ourci_peer_refused_total")
	if !ok {
		t.Fatalf("/metrics of %s has no ourci_peer_refused_total", m.nodes[i].spec.Name)
	}
	return int(v)
}

// metricValue reads an unlabelled metric from node i's /metrics.
func metricValue(t *testing.T, m *mesh, i int, name string) (float64, bool) {
	t.Helper()
	tok, err := exec.Command(binPath, "token", "--secret-file", m.secretFile).Output()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", m.nodes[i].url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	for _, l := range strings.Split(string(out), "\n") {
		var v float64
		if _, err := fmt.Sscanf(l, name+" %g", &v); err == nil {
			return v, true
		}
	}
	return 0, false
}
