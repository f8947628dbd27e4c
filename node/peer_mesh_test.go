package node_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/meshtls"
)

// peerClient is an HTTP client presenting cert (nil: none) to a peer port,
// trusting whatever server answers: the server side's checks are under test.
func peerClient(cert *tls.Certificate, protos ...string) *http.Client {
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: protos}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func keyPair(t *testing.T, ca *meshtls.CA, role, name string) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(role, name, time.Hour)
	if err != nil {
		t.Fatalf("issue %s %s: %v", role, name, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("key pair: %v", err)
	}
	return &c
}

// TestPeerPortAdmitsOnlyNodes: node-to-node HTTP lives on the Raft port
// behind mutual TLS. Only a node certificate of the mesh's CA gets an
// answer there; plaintext, no certificate, another CA's node certificate
// and the mesh's own client certificate are refused in the handshake and
// counted. The public API does not serve the internal routes at all.
func TestPeerPortAdmitsOnlyNodes(t *testing.T) {
	m := startMesh(t, 2, nil)
	ctx := testCtx(t)
	nd := m.Nodes[1]
	meshCA := meshtls.DeriveCA(m.Secret.TLSSeed())
	otherCA, err := meshtls.NewCA("another mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	token := "Bearer " + m.Secret.ClusterToken()
	call := func(c *http.Client, scheme, path string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+nd.PeerAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	refused := []struct {
		name   string
		client *http.Client
		scheme string
	}{
		{"plaintext HTTP", &http.Client{Timeout: 10 * time.Second}, "http"},
		{"TLS without a certificate", peerClient(nil, meshtls.ProtoHTTP), "https"},
		{"a node certificate of another CA", peerClient(keyPair(t, otherCA, meshtls.RoleNode, "intruder"), meshtls.ProtoHTTP), "https"},
		{"a client certificate of this mesh's CA", peerClient(keyPair(t, meshCA, meshtls.RoleClient, "alice"), meshtls.ProtoHTTP), "https"},
		{"a node certificate of this CA without the peer protocol", peerClient(keyPair(t, meshCA, meshtls.RoleNode, "node9")), "https"},
	}
	for _, tt := range refused {
		before := nd.PeerRefused()
		code, err := call(tt.client, tt.scheme, "/v1/health")
		if err == nil {
			t.Errorf("%s: got HTTP %d, want the connection refused", tt.name, code)
			continue
		}
		// The client may see the refusal before the node counts it.
		m.WaitFor(waitLong, tt.name+": the refusal counted", func() (bool, string) {
			got := nd.PeerRefused()
			return got == before+1, fmt.Sprintf("refused counter went from %d to %d, want +1 (err %v)", before, got, err)
		})
	}

	// The same calls with a node certificate of the mesh's CA are served:
	// this is what every node presents (derived from the cluster secret).
	good := peerClient(keyPair(t, meshCA, meshtls.RoleNode, "node9"), meshtls.ProtoHTTP)
	for _, path := range []string{"/v1/health", "/v1/internal/blobs/" + strings.Repeat("ab", 32)} {
		code, err := call(good, "https", path)
		if err != nil {
			t.Fatalf("node certificate of the mesh CA, GET %s: got error %v, want an answer", path, err)
		}
		if want := map[bool]int{true: 200, false: 404}[path == "/v1/health"]; code != want {
			t.Errorf("node certificate of the mesh CA, GET %s: got %d, want %d", path, code, want)
		}
	}

	// The public API has no internal routes, whatever the token.
	for _, path := range []string{"/v1/internal/report", "/v1/internal/leave", "/v1/internal/blobs/" + strings.Repeat("ab", 32) + "/pull"} {
		req, _ := http.NewRequestWithContext(ctx, "POST", nd.URL()+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("public POST %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("public POST %s with the cluster token: got %d, want 404 (peer port only)", path, resp.StatusCode)
		}
	}

	// Raw bytes that are not TLS never reach Raft: the port hangs up.
	raw, err := net.DialTimeout("tcp", nd.PeerAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	raw.Write([]byte("\x01raft append entries, in the clear\n"))
	if n, err := raw.Read(make([]byte, 512)); err == nil {
		// A TLS alert may come first; the connection must then close.
		_, err = raw.Read(make([]byte, 512))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("raw bytes on the peer port: read %d bytes and then %v, want the connection closed", n, err)
		}
	}
}

// TestRaftRefusesAnotherCA: a node that holds the cluster secret (gossip,
// tokens) but a node certificate of another CA cannot join Raft: the
// mesh's nodes refuse its connections and it never receives the ledger.
func TestRaftRefusesAnotherCA(t *testing.T) {
	m := startMesh(t, 2, nil)
	otherCA, err := meshtls.NewCA("another mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := otherCA.Issue(meshtls.RoleNode, "node2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := meshtls.NewPeer(otherCA, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	intruder := m.Add(func(_ int, c *node.Config) { c.TLS = peer })
	refused := func() uint64 {
		var sum uint64
		for _, nd := range m.Nodes {
			sum += nd.PeerRefused()
		}
		return sum
	}

	r := spawn(t, m.Client(0), "nobody-serves-this", "true")
	m.WaitFor(waitLong, "the mesh's nodes to apply the spawn", func() (bool, string) {
		for _, nd := range m.Nodes[:2] {
			if len(nd.Status().Jobs) == 0 {
				return false, nd.Name() + " has no job"
			}
		}
		return true, ""
	})
	// The leader keeps trying to bring the new member in (replication,
	// the catch-up check); each attempt is refused by one side or the
	// other, and the intruder's replica stays empty.
	for round := range 2 {
		seen := refused()
		m.WaitFor(waitLong, fmt.Sprintf("refusals, round %d", round), func() (bool, string) {
			got := refused()
			return got > seen, fmt.Sprintf("%d refused", got)
		})
	}
	if st := intruder.Status(); len(st.Jobs) != 0 {
		t.Errorf("intruder's replica: got jobs %s, want none (job %s must not reach it)", jobIDs(st.Jobs), r.Job)
	}
	if idx := intruder.FSM().Index(); idx != 0 {
		t.Errorf("intruder's applied index: got %d, want 0", idx)
	}
}
