package raftfsm

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/meshtls"
	"github.com/ourci/ourci/node/nodetest/wait"
)

const ioDeadline = 10 * time.Second

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testCA(t *testing.T, name string) *meshtls.CA {
	t.Helper()
	ca, err := meshtls.NewCA(name, time.Hour)
	if err != nil {
		t.Fatalf("NewCA: got error %v, want nil", err)
	}
	return ca
}

// issuedPeer is a node identity issued by ca.
func issuedPeer(t *testing.T, ca *meshtls.CA, name string) *meshtls.Peer {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(meshtls.RoleNode, name, time.Hour)
	if err != nil {
		t.Fatalf("Issue(%s): got error %v, want nil", name, err)
	}
	p, err := meshtls.NewPeer(ca, certPEM, keyPEM)
	if err != nil {
		t.Fatalf("NewPeer(%s): got error %v, want nil", name, err)
	}
	return p
}

// derivedPeer is a node identity of the CA derived from secret.
func derivedPeer(t *testing.T, secret, name string) *meshtls.Peer {
	t.Helper()
	p, err := meshtls.Derive([]byte(secret), name)
	if err != nil {
		t.Fatalf("Derive(%s): got error %v, want nil", name, err)
	}
	return p
}

// testStream is a tlsStream on its own peer port, built the way OpenRaft
// builds it, with the port's refusals on a channel.
type testStream struct {
	*tlsStream
	refused chan error
}

func newTestStream(t *testing.T, peer *meshtls.Peer) *testStream {
	t.Helper()
	s := &testStream{refused: make(chan error, 16)}
	mux := meshtls.Listen(listen(t), peer, func(_ net.Addr, err error) {
		select {
		case s.refused <- err:
		default:
		}
	}, meshtls.ProtoRaft)
	t.Cleanup(func() { mux.Close() })
	s.tlsStream = &tlsStream{Listener: mux.Listener(meshtls.ProtoRaft), peer: peer}
	return s
}

func addrOf(s *testStream) raft.ServerAddress { return raft.ServerAddress(s.Addr().String()) }

// serverSide accepts one connection on s and runs fn on it in a goroutine;
// the returned channel yields fn's error.
func serverSide(t *testing.T, s *testStream, fn func(net.Conn) error) <-chan error {
	t.Helper()
	out := make(chan error, 1)
	go func() {
		c, err := s.Accept()
		if err != nil {
			out <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioDeadline))
		out <- fn(c)
	}()
	return out
}

func waitResult(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(ioDeadline + 5*time.Second):
		t.Fatalf("%s: no result within %v", what, ioDeadline+5*time.Second)
		return nil
	}
}

func readExactly(c net.Conn, n int) ([]byte, error) {
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return buf, err
}

// peerOf is the identity a handshaken connection's other end presented.
func peerOf(c net.Conn) (meshtls.Identity, string, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return meshtls.Identity{}, "", fmt.Errorf("conn is %T, want *tls.Conn", c)
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return meshtls.Identity{}, cs.NegotiatedProtocol, errors.New("no peer certificate")
	}
	id, err := meshtls.IdentityOf(cs.PeerCertificates[0])
	return id, cs.NegotiatedProtocol, err
}

// bigMessage is 1 MiB with a pattern that depends on seed.
func bigMessage(seed byte) []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

func TestTLSStreamSameCA(t *testing.T) {
	type pair struct{ a, b *meshtls.Peer }
	issued := func(t *testing.T) pair {
		ca := testCA(t, "mesh CA")
		return pair{issuedPeer(t, ca, "node-a"), issuedPeer(t, ca, "node-b")}
	}
	derived := func(t *testing.T) pair {
		return pair{derivedPeer(t, "cluster-secret", "node-a"), derivedPeer(t, "cluster-secret", "node-b")}
	}
	tests := []struct {
		name        string
		peers       func(t *testing.T) pair
		serverFirst bool // the server writes before it reads
	}{
		{"issued CA, server reads first", issued, false},
		{"issued CA, server writes first", issued, true},
		{"derived CA, server reads first", derived, false},
		{"derived CA, server writes first", derived, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.peers(t)
			a, b := newTestStream(t, p.a), newTestStream(t, p.b)
			toServer, toClient := bigMessage(1), bigMessage(2)
			done := serverSide(t, b, func(c net.Conn) error {
				id, proto, err := peerOf(c)
				if err != nil {
					return err
				}
				if id != (meshtls.Identity{Role: meshtls.RoleNode, Name: "node-a"}) || proto != meshtls.ProtoRaft {
					return fmt.Errorf("server sees peer %+v on %q, want node node-a on %q", id, proto, meshtls.ProtoRaft)
				}
				if tt.serverFirst {
					if _, err := c.Write([]byte("hello from server")); err != nil {
						return err
					}
				}
				got, err := readExactly(c, len("ping from client"))
				if err != nil {
					return err
				}
				if string(got) != "ping from client" {
					return fmt.Errorf("server read %q, want %q", got, "ping from client")
				}
				if !tt.serverFirst {
					if _, err := c.Write([]byte("hello from server")); err != nil {
						return err
					}
				}
				big, err := readExactly(c, len(toServer))
				if err != nil {
					return fmt.Errorf("server read of 1 MiB: %w", err)
				}
				if !bytes.Equal(big, toServer) {
					return errors.New("server read of 1 MiB: got other bytes than sent")
				}
				_, err = c.Write(toClient)
				return err
			})

			conn, err := a.Dial(addrOf(b), 5*time.Second)
			if err != nil {
				t.Fatalf("Dial: got error %v, want nil", err)
			}
			defer conn.Close()
			if id, proto, err := peerOf(conn); err != nil || id.Name != "node-b" || proto != meshtls.ProtoRaft {
				t.Errorf("client sees peer %+v on %q (%v), want node-b on %q", id, proto, err, meshtls.ProtoRaft)
			}
			conn.SetDeadline(time.Now().Add(ioDeadline))
			if _, err := conn.Write([]byte("ping from client")); err != nil {
				t.Fatalf("client write: got error %v, want nil", err)
			}
			got, err := readExactly(conn, len("hello from server"))
			if err != nil || string(got) != "hello from server" {
				t.Fatalf("client read: got %q (error %v), want %q", got, err, "hello from server")
			}
			if _, err := conn.Write(toServer); err != nil {
				t.Fatalf("client write of 1 MiB: got error %v, want nil", err)
			}
			big, err := readExactly(conn, len(toClient))
			if err != nil {
				t.Fatalf("client read of 1 MiB: got error %v, want nil", err)
			}
			if i := firstDiff(big, toClient); i >= 0 {
				t.Fatalf("client read of 1 MiB: byte %d got %d, want %d", i, big[i], toClient[i])
			}
			if err := waitResult(t, done, "server"); err != nil {
				t.Fatalf("server: got error %v, want nil", err)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// checkNothingAccepted dials s with good and checks that its connection,
// not an earlier refused one, is the next s accepts.
func checkNothingAccepted(t *testing.T, s *testStream, good *meshtls.Peer) {
	t.Helper()
	accepted := make(chan string, 1)
	go func() {
		c, err := s.Accept()
		if err != nil {
			accepted <- "error: " + err.Error()
			return
		}
		accepted <- c.RemoteAddr().String()
		c.Close()
	}()
	gs := &tlsStream{peer: good}
	c, err := gs.Dial(addrOf(s), 5*time.Second)
	if err != nil {
		t.Fatalf("good Dial after the refusal: got error %v, want nil", err)
	}
	defer c.Close()
	select {
	case got := <-accepted:
		if got != c.LocalAddr().String() {
			t.Errorf("accepted after the refusal: got %s, want only the good node's %s", got, c.LocalAddr())
		}
	case <-time.After(ioDeadline):
		t.Fatalf("good Dial after the refusal: not accepted within %v", ioDeadline)
	}
}

func TestTLSStreamWrongCA(t *testing.T) {
	issued := func(caName string) func(t *testing.T) (*meshtls.Peer, *meshtls.Peer) {
		return func(t *testing.T) (*meshtls.Peer, *meshtls.Peer) {
			ca := testCA(t, caName)
			return issuedPeer(t, ca, "node-x"), issuedPeer(t, ca, "node-y")
		}
	}
	derived := func(secret string) func(t *testing.T) (*meshtls.Peer, *meshtls.Peer) {
		return func(t *testing.T) (*meshtls.Peer, *meshtls.Peer) {
			return derivedPeer(t, secret, "node-x"), derivedPeer(t, secret, "node-y")
		}
	}
	tests := []struct {
		name           string
		client, server func(t *testing.T) (*meshtls.Peer, *meshtls.Peer) // two nodes of one mesh
	}{
		{"issued by another CA", issued("CA one"), issued("CA two")},
		{"derived from another secret", derived("secret-one"), derived("secret-two")},
		{"issued CA against derived CA", issued("CA one"), derived("secret")},
		{"derived CA against issued CA", derived("secret"), issued("CA one")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, _ := tt.client(t)
			server, twin := tt.server(t)
			a, b := newTestStream(t, client), newTestStream(t, server)
			c, err := a.Dial(addrOf(b), 5*time.Second)
			if c != nil {
				c.Close()
				t.Errorf("Dial with another CA: got a conn, want nil")
			}
			if !errors.Is(err, ErrAuth) || !errors.Is(err, meshtls.ErrHandshake) {
				t.Fatalf("Dial with another CA: got error %v, want %v wrapping %v", err, ErrAuth, meshtls.ErrHandshake)
			}
			// The server side refused it too, and delivered nothing.
			if err := waitResult(t, b.refused, "server refusal"); err == nil {
				t.Errorf("server refusal: got nil error, want one")
			}
			checkNothingAccepted(t, b, twin)
		})
	}
}

func TestTLSStreamRawGarbage(t *testing.T) {
	tests := []struct {
		name  string
		input string
		close bool // the client closes its write side after sending
	}{
		{"plaintext http request", "GET / HTTP/1.1\r\nHost: raft\r\nUser-Agent: curl\r\n\r\n", false},
		{"old HMAC handshake", "OURCI-RAFT1\n0123456789abcdef", false},
		{"binary garbage", "\x00\xff\x13\x37 not tls \x80\x81\x82\x83\x84\x85\x86\x87", false},
		{"TLS record header then hang up", "\x16\x03\x01\x02\x00", true},
		{"nothing then hang up", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testCA(t, "mesh CA")
			b := newTestStream(t, issuedPeer(t, ca, "node-b"))
			raw, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatalf("raw dial: %v", err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(ioDeadline))
			if _, err := raw.Write([]byte(tt.input)); err != nil {
				t.Fatalf("raw write: %v", err)
			}
			if tt.close {
				raw.(*net.TCPConn).CloseWrite()
			}
			// The server hung up: the raw client reads EOF (or a reset),
			// not a timeout, and never a byte of Raft traffic.
			n, err := raw.Read(make([]byte, 256))
			if err == nil {
				t.Fatalf("raw client Read: got %d bytes and no error, want the conn closed", n)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("raw client Read: got timeout %v, want the conn closed by the server", err)
			}
			if err := waitResult(t, b.refused, "server refusal"); err == nil {
				t.Errorf("server refusal: got nil error, want one")
			}
			checkNothingAccepted(t, b, issuedPeer(t, ca, "node-c"))
		})
	}
}

func TestTLSStreamAddr(t *testing.T) {
	l := listen(t)
	mux := meshtls.Listen(l, derivedPeer(t, "k", "n1"), nil, meshtls.ProtoRaft)
	defer mux.Close()
	raftL := mux.Listener(meshtls.ProtoRaft)
	if got := (&tlsStream{Listener: raftL}).Addr(); got.String() != l.Addr().String() {
		t.Errorf("Addr without advertise: got %v, want %v", got, l.Addr())
	}
	adv := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 7001}
	if got := (&tlsStream{Listener: raftL, advertise: adv}).Addr(); got.String() != "10.0.0.7:7001" {
		t.Errorf("Addr with advertise: got %v, want 10.0.0.7:7001", got)
	}
}

func TestTLSStreamDialRefused(t *testing.T) {
	a := &tlsStream{peer: derivedPeer(t, "k", "n1")}
	l := listen(t)
	addr := l.Addr().String()
	l.Close()
	c, err := a.Dial(raft.ServerAddress(addr), time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("Dial to a closed port: got a conn, want an error")
	}
	if errors.Is(err, ErrAuth) {
		t.Errorf("Dial to a closed port: got %v, want an error that is not %v", err, ErrAuth)
	}
}

// TestTLSStreamDialSilentPeer: a port that accepts but never answers the
// handshake fails the Dial within its timeout.
func TestTLSStreamDialSilentPeer(t *testing.T) {
	l := listen(t)
	held := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			held <- c
		}
	}()
	defer func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	}()
	a := &tlsStream{peer: derivedPeer(t, "k", "n1")}
	const timeout = 300 * time.Millisecond
	start := time.Now()
	c, err := a.Dial(raft.ServerAddress(l.Addr().String()), timeout)
	if err == nil {
		c.Close()
		t.Fatalf("Dial to a silent port: got a conn, want an error")
	}
	if !errors.Is(err, ErrAuth) {
		t.Errorf("Dial to a silent port: got %v, want %v (a handshake that timed out)", err, ErrAuth)
	}
	if took := time.Since(start); took >= timeout+ioDeadline/2 {
		t.Errorf("Dial to a silent port took %v, want about its timeout %v", took, timeout)
	}
}

// TestOpenRaftTLS: nodes holding certificates of one CA (no secret) form
// a mesh, and the same port serves the peer HTTP API.
func TestOpenRaftTLS(t *testing.T) {
	ca := testCA(t, "mesh CA")
	peers := map[string]*meshtls.Peer{"tls-0": issuedPeer(t, ca, "tls-0"), "tls-1": issuedPeer(t, ca, "tls-1")}
	c := newCluster(t)
	c.tune = func(rc *RaftConfig) {
		rc.TLS, rc.Secret, rc.PeerHTTP = peers[rc.ID], nil, true
	}
	n0, n1 := c.start("tls-0", "", ""), c.start("tls-1", "", "")
	servers := []raft.Server{
		{Suffrage: raft.Voter, ID: "tls-0", Address: n0.r.Transport.LocalAddr()},
		{Suffrage: raft.Voter, ID: "tls-1", Address: n1.r.Transport.LocalAddr()},
	}
	if err := n0.r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: got error %v, want nil", err)
	}
	leader := c.waitLeader(n0, n1)
	_, idx := propose(t, leader, spawnRoot("job-1", "root"))
	waitIndex(t, n0, idx)
	waitIndex(t, n1, idx)

	// A node of another CA is refused on the port, and the refusal is logged.
	intruder := issuedPeer(t, testCA(t, "other CA"), "tls-0")
	if conn, err := intruder.Dial(string(n1.r.Transport.LocalAddr()), meshtls.ProtoRaft, 5*time.Second); err == nil {
		conn.Close()
		t.Errorf("Dial by another CA's node: got a conn, want %v", meshtls.ErrHandshake)
	}
	waitLog(t, c.logs, "refused a connection on the peer port")

	// The peer HTTP API on node 1's Raft port.
	httpL := n1.r.PeerHTTP()
	if httpL == nil {
		t.Fatalf("PeerHTTP with RaftConfig.PeerHTTP: got nil, want a listener")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no peer certificate", http.StatusInternalServerError)
			return
		}
		id, err := meshtls.IdentityOf(r.TLS.PeerCertificates[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello %s %s", id.Role, id.Name)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpL) }()
	defer func() {
		srv.Close()
		waitResult(t, served, "peer HTTP Serve")
	}()
	tr := &http.Transport{TLSClientConfig: peers["tls-0"].ClientConfig(meshtls.ProtoHTTP)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: ioDeadline}).Get("https://" + string(n1.r.Transport.LocalAddr()) + "/hello")
	if err != nil {
		t.Fatalf("peer HTTP GET: got error %v, want nil", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "hello node tls-0" {
		t.Errorf("peer HTTP GET: got %d %q (error %v), want 200 %q", resp.StatusCode, body, err, "hello node tls-0")
	}
	// Raft still commits with HTTP on its port.
	_, idx = propose(t, leader, spawnRoot("job-2", "root-2"))
	waitIndex(t, n0, idx)
	waitIndex(t, n1, idx)
}

func TestOpenRaftWithoutPeerHTTP(t *testing.T) {
	c := newCluster(t)
	n := c.start("solo", "secret", "")
	if l := n.r.PeerHTTP(); l != nil {
		t.Errorf("PeerHTTP without RaftConfig.PeerHTTP: got %T, want nil", l)
	}
}

// waitLog waits until raft's log holds want.
func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	wait.For(t, ioDeadline, fmt.Sprintf("%q in raft's log", want), func() (bool, string) {
		return strings.Contains(logs.String(), want), "not there yet"
	})
}
