package meshtls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/meshtls"
)

// waitFor bounds every wait in these tests.
const waitFor = 10 * time.Second

var bothProtos = []string{meshtls.ProtoRaft, meshtls.ProtoHTTP}

// refusal is one onErr call of a Mux.
type refusal struct {
	remote string
	err    error
}

// delivery is one connection a Mux handed to a protocol's listener.
type delivery struct {
	proto string
	conn  net.Conn
}

// muxNode is a Mux on 127.0.0.1, with its refusals and, for the
// protocols collect was asked for, its deliveries gathered on channels.
type muxNode struct {
	t         *testing.T
	peer      *meshtls.Peer
	mux       *meshtls.Mux
	addr      string
	refused   chan refusal
	delivered chan delivery
	wg        sync.WaitGroup
}

func startMux(t *testing.T, peer *meshtls.Peer, protos ...string) *muxNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	n := &muxNode{t: t, peer: peer, addr: l.Addr().String(),
		refused: make(chan refusal, 64), delivered: make(chan delivery, 64)}
	n.mux = meshtls.Listen(l, peer, func(remote net.Addr, err error) {
		select {
		case n.refused <- refusal{remote.String(), err}:
		default: // the test fails waiting for a refusal it did not get
		}
	}, protos...)
	t.Cleanup(func() {
		n.mux.Close()
		n.wg.Wait()
		close(n.delivered)
		for d := range n.delivered {
			d.conn.Close()
		}
	})
	return n
}

// collect accepts on each of protos until the Mux closes.
func (n *muxNode) collect(protos ...string) {
	for _, proto := range protos {
		l := n.mux.Listener(proto)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				n.delivered <- delivery{proto, c}
			}
		}()
	}
}

func (n *muxNode) nextRefusal() refusal {
	n.t.Helper()
	select {
	case r := <-n.refused:
		return r
	case <-time.After(waitFor):
		n.t.Fatalf("no refusal (onErr call) within %v", waitFor)
		return refusal{}
	}
}

func (n *muxNode) nextDelivery() delivery {
	n.t.Helper()
	select {
	case d := <-n.delivered:
		return d
	case <-time.After(waitFor):
		n.t.Fatalf("no connection delivered within %v", waitFor)
		return delivery{}
	}
}

// noneDelivered checks that no connection is waiting on any listener.
func (n *muxNode) noneDelivered(what string) {
	n.t.Helper()
	select {
	case d := <-n.delivered:
		d.conn.Close()
		n.t.Errorf("%s: got a connection from %v on %s, want none", what, d.conn.RemoteAddr(), d.proto)
	default:
	}
}

// goodDial connects peer to n for proto and checks that exactly this
// connection arrives on proto's listener, from peer.
func (n *muxNode) goodDial(peer *meshtls.Peer, proto string) (client, server net.Conn) {
	n.t.Helper()
	c, err := peer.Dial(n.addr, proto, waitFor)
	if err != nil {
		n.t.Fatalf("Dial(%s) by %s: got error %v, want nil", proto, peer.Name, err)
	}
	n.t.Cleanup(func() { c.Close() })
	d := n.nextDelivery()
	if d.proto != proto || d.conn.RemoteAddr().String() != c.LocalAddr().String() {
		n.t.Fatalf("delivered: got %v on %s, want %v on %s", d.conn.RemoteAddr(), d.proto, c.LocalAddr(), proto)
	}
	if got := identityOfConn(n.t, d.conn); got != (meshtls.Identity{Role: meshtls.RoleNode, Name: peer.Name}) {
		n.t.Errorf("delivered conn's peer: got %+v, want node %s", got, peer.Name)
	}
	return c, d.conn
}

func identityOfConn(t *testing.T, c net.Conn) meshtls.Identity {
	t.Helper()
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("conn: got %T, want *tls.Conn", c)
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		t.Fatalf("conn: got no peer certificate, want one")
	}
	id, err := meshtls.IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		t.Fatalf("IdentityOf(peer certificate): got error %v, want nil", err)
	}
	return id
}

// closedByServer checks that c's other end hung up: a read fails, and not
// with a timeout.
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	n, err := c.Read(make([]byte, 512))
	for err == nil { // a plaintext client may read a reply before the close
		n, err = c.Read(make([]byte, 512))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: read got timeout %v (after %d bytes), want the connection closed by the server", what, err, n)
	}
}

// exchange sends msg from a to b and back, checking both arrive.
func exchange(t *testing.T, a, b net.Conn, msg string) {
	t.Helper()
	for _, dir := range []struct {
		from, to net.Conn
		name     string
	}{{a, b, "a→b"}, {b, a, "b→a"}} {
		dir.from.SetDeadline(time.Now().Add(waitFor))
		dir.to.SetDeadline(time.Now().Add(waitFor))
		errc := make(chan error, 1)
		go func() {
			_, err := dir.from.Write([]byte(msg))
			errc <- err
		}()
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(dir.to, buf); err != nil || string(buf) != msg {
			t.Fatalf("%s: got %q (error %v), want %q", dir.name, buf, err, msg)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s write: got error %v, want nil", dir.name, err)
		}
	}
}

func TestMuxNodesTalk(t *testing.T) {
	ca := newCA(t, "mesh CA")
	a, b := startMux(t, newPeer(t, ca, "node-a"), bothProtos...), startMux(t, newPeer(t, ca, "node-b"), bothProtos...)
	a.collect(meshtls.ProtoRaft)
	b.collect(meshtls.ProtoRaft)

	// Raft, both ways.
	ac, bs := b.goodDial(a.peer, meshtls.ProtoRaft)
	exchange(t, ac, bs, "append entries from a")
	bc, as := a.goodDial(b.peer, meshtls.ProtoRaft)
	exchange(t, bc, as, "append entries from b")
	if got := ac.(*tls.Conn).ConnectionState().NegotiatedProtocol; got != meshtls.ProtoRaft {
		t.Errorf("client NegotiatedProtocol: got %q, want %q", got, meshtls.ProtoRaft)
	}
	if got := identityOfConn(t, ac); got.Name != "node-b" {
		t.Errorf("a's view of b: got %+v, want node-b", got)
	}

	// HTTP on b's same port: a real server and client.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no peer certificate", http.StatusInternalServerError)
			return
		}
		id, err := meshtls.IdentityOf(r.TLS.PeerCertificates[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %s %s %s", r.URL.Path, id.Role, id.Name, r.TLS.NegotiatedProtocol)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(b.mux.Listener(meshtls.ProtoHTTP)) }()
	tr := &http.Transport{TLSClientConfig: a.peer.ClientConfig(meshtls.ProtoHTTP)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitFor}
	for _, path := range []string{"/v1/who", "/v1/again"} { // the second reuses the connection
		resp, err := client.Get("https://" + b.addr + path)
		if err != nil {
			t.Fatalf("GET %s: got error %v, want nil", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: read body: got error %v, want nil", path, err)
		}
		want := path + " node node-a " + meshtls.ProtoHTTP
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s: got %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
	// Raft still works beside HTTP.
	exchange(t, ac, bs, "heartbeat")

	// Closing the HTTP server closes the Mux: its protocols share a port.
	srv.Close()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: got error %v, want %v", err, http.ErrServerClosed)
		}
	case <-time.After(waitFor):
		t.Fatalf("Serve did not return within %v of Close", waitFor)
	}
	for _, r := range []chan refusal{a.refused, b.refused} {
		select {
		case got := <-r:
			t.Errorf("onErr: got a refusal of %s (%v), want none", got.remote, got.err)
		default:
		}
	}
}

func TestMuxRefuses(t *testing.T) {
	ca := newCA(t, "mesh CA")
	other := newCA(t, "other CA")
	good := newPeer(t, ca, "good")
	nodeCert := issuedPair(t, ca, meshtls.RoleNode, "sneaky", time.Hour)
	foreignCert := issuedPair(t, other, meshtls.RoleNode, "foreign", time.Hour)
	clientCert := issuedPair(t, ca, meshtls.RoleClient, "alice", time.Hour)
	expiredCert := issuedPair(t, ca, meshtls.RoleNode, "old", -time.Minute)

	// tlsDial offers cert (if any) and protos; it skips verifying the
	// server so that only the Mux decides.
	tlsDial := func(cert *tls.Certificate, protos ...string) func(net.Conn) {
		return func(raw net.Conn) {
			cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: protos, MinVersion: tls.VersionTLS12}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			c := tls.Client(raw, cfg)
			c.SetDeadline(time.Now().Add(waitFor))
			c.Handshake() // in TLS 1.3 the client may finish before the server refuses it
		}
	}
	plain := func(s string) func(net.Conn) {
		return func(raw net.Conn) { raw.Write([]byte(s)) }
	}

	tests := []struct {
		name    string
		protos  []string // of the Mux; nil: both
		attempt func(raw net.Conn)
		wantErr error  // the onErr error is this, if set
		wantMsg string // and contains this, if set
	}{
		{"node of another CA", nil, tlsDial(&foreignCert, meshtls.ProtoRaft), meshtls.ErrPeer, "certificate"},
		{"client certificate of the same CA", nil, tlsDial(&clientCert, meshtls.ProtoHTTP), meshtls.ErrPeer, "a client certificate cannot act as a node"},
		{"expired node certificate", nil, tlsDial(&expiredCert, meshtls.ProtoRaft), meshtls.ErrPeer, "expired"},
		{"no client certificate", nil, tlsDial(nil, meshtls.ProtoRaft), nil, ""},
		{"plaintext HTTP", nil, plain("GET / HTTP/1.1\r\nHost: node\r\n\r\n"), nil, ""},
		{"plaintext garbage", nil, plain("\x00\x01\x02 not tls at all \xff\xfe"), nil, ""},
		{"no ALPN", nil, tlsDial(&nodeCert), meshtls.ErrPeer, ""},
		{"unknown ALPN", nil, tlsDial(&nodeCert, "h2", "ourci-http/0"), nil, ""},
		{"protocol the Mux was not started with", []string{meshtls.ProtoRaft}, tlsDial(&nodeCert, meshtls.ProtoHTTP), nil, ""},
		{"TLS 1.2 only", nil, func(raw net.Conn) {
			c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{nodeCert},
				NextProtos: []string{meshtls.ProtoRaft}, MaxVersion: tls.VersionTLS12})
			c.SetDeadline(time.Now().Add(waitFor))
			c.Handshake()
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			protos := tt.protos
			if protos == nil {
				protos = bothProtos
			}
			n := startMux(t, good, protos...)
			n.collect(protos...)

			raw, err := net.DialTimeout("tcp", n.addr, waitFor)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer raw.Close()
			tt.attempt(raw)
			closedByServer(t, raw, "refused client")

			r := n.nextRefusal()
			if r.remote != raw.LocalAddr().String() {
				t.Errorf("onErr remote: got %s, want %s", r.remote, raw.LocalAddr())
			}
			if r.err == nil {
				t.Fatalf("onErr error: got nil, want one")
			}
			if tt.wantErr != nil && !errors.Is(r.err, tt.wantErr) {
				t.Errorf("onErr error: got %v, want %v", r.err, tt.wantErr)
			}
			if !strings.Contains(r.err.Error(), tt.wantMsg) {
				t.Errorf("onErr error: got %q, want it to contain %q", r.err, tt.wantMsg)
			}
			t.Logf("refused with: %v", r.err)

			// No connection reached a listener: the next one delivered is
			// a good node's, dialled after the refusal.
			n.noneDelivered("after the refusal")
			n.goodDial(newPeer(t, ca, "next"), protos[0])
			n.noneDelivered("after the good dial")
			select {
			case r := <-n.refused:
				t.Errorf("onErr: got a second refusal of %s (%v), want one", r.remote, r.err)
			default:
			}
		})
	}
}

// serveOnce runs a plain TLS server with cfg (or, if cfg is nil, a raw TCP
// server that runs fn) for one connection.
func serveOnce(t *testing.T, cfg *tls.Config, fn func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		if cfg != nil {
			tc := tls.Server(c, cfg)
			if tc.Handshake() == nil {
				io.Copy(io.Discard, tc) // until the client hangs up
			}
			return
		}
		fn(c)
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("test server did not finish within %v", waitFor)
		}
	})
	return l.Addr().String()
}

func TestPeerDialRefusesServer(t *testing.T) {
	ca := newCA(t, "mesh CA")
	other := newCA(t, "other CA")
	me := newPeer(t, ca, "me")
	clientCert := issuedPair(t, ca, meshtls.RoleClient, "alice", time.Hour)
	foreignCert := issuedPair(t, other, meshtls.RoleNode, "foreign", time.Hour)
	nodeCert := issuedPair(t, ca, meshtls.RoleNode, "n2", time.Hour)
	clientBothCert := craftedPair(t, ca, leafTemplate("alice", "ourci:client:alice"))
	serverCfg := func(cert tls.Certificate, protos ...string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, NextProtos: protos}
	}

	tests := []struct {
		name    string
		cfg     *tls.Config
		fn      func(net.Conn)
		timeout time.Duration
		wantMsg string
	}{
		{"server holds a client certificate", serverCfg(clientCert, meshtls.ProtoRaft), nil, waitFor, ""},
		{"server holds a client identity with server usage", serverCfg(clientBothCert, meshtls.ProtoRaft), nil, waitFor, "cannot act as a node"},
		{"server holds another CA's node certificate", serverCfg(foreignCert, meshtls.ProtoRaft), nil, waitFor, ""},
		{"server does not speak the protocol", serverCfg(nodeCert), nil, waitFor, "does not speak"},
		{"plaintext server", nil, func(c net.Conn) {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			io.Copy(io.Discard, c)
		}, waitFor, ""},
		{"server never answers", nil, func(c net.Conn) { io.Copy(io.Discard, c) }, 300 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveOnce(t, tt.cfg, tt.fn)
			start := time.Now()
			c, err := me.Dial(addr, meshtls.ProtoRaft, tt.timeout)
			if err == nil {
				c.Close()
				t.Fatalf("Dial: got a connection, want %v", meshtls.ErrHandshake)
			}
			if !errors.Is(err, meshtls.ErrHandshake) {
				t.Errorf("Dial: got error %v, want %v", err, meshtls.ErrHandshake)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Dial: got error %q, want it to contain %q", err, tt.wantMsg)
			}
			if took := time.Since(start); took >= tt.timeout+waitFor/2 {
				t.Errorf("Dial took %v, want about its timeout %v", took, tt.timeout)
			}
		})
	}

	t.Run("closed port", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		c, err := me.Dial(addr, meshtls.ProtoRaft, waitFor)
		if err == nil {
			c.Close()
			t.Fatalf("Dial to a closed port: got a connection, want an error")
		}
		if errors.Is(err, meshtls.ErrHandshake) {
			t.Errorf("Dial to a closed port: got %v, want an error that is not %v", err, meshtls.ErrHandshake)
		}
	})
}

func TestMuxStalledHandshake(t *testing.T) {
	ca := newCA(t, "mesh CA")
	n := startMux(t, newPeer(t, ca, "server"), bothProtos...)
	n.collect(bothProtos...)

	// Two clients connect and stall: one sends nothing, one half a TLS
	// record header.
	var stalled []net.Conn
	for _, first := range []string{"", "\x16\x03"} {
		c, err := net.DialTimeout("tcp", n.addr, waitFor)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if first != "" {
			if _, err := c.Write([]byte(first)); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		stalled = append(stalled, c)
	}

	// A good node connects meanwhile. Had the stalled handshakes blocked
	// it, they would have failed (timed out, onErr called) first.
	good := newPeer(t, ca, "good")
	c, err := good.Dial(n.addr, meshtls.ProtoRaft, waitFor)
	if err != nil {
		t.Fatalf("Dial beside stalled clients: got error %v, want nil", err)
	}
	defer c.Close()
	d := n.nextDelivery()
	if d.conn.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("delivered: got %v, want the good node's %v", d.conn.RemoteAddr(), c.LocalAddr())
	}
	select {
	case r := <-n.refused:
		t.Fatalf("onErr before the good node was delivered: got a refusal of %s (%v), want the stalled handshakes still pending", r.remote, r.err)
	default:
	}

	// Close interrupts the stalled handshakes rather than waiting them out.
	closed := make(chan error, 1)
	go func() { closed <- n.mux.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: got error %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("Close did not return within %v", waitFor)
	}
	want := map[string]bool{}
	for _, s := range stalled {
		want[s.LocalAddr().String()] = true
	}
	for range stalled {
		r := n.nextRefusal()
		if !want[r.remote] {
			t.Errorf("onErr after Close: got a refusal of %s, want one of the stalled clients", r.remote)
		}
		delete(want, r.remote)
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("onErr for a stalled client: got error %v, want %v (interrupted by Close, not timed out)", r.err, context.Canceled)
		}
	}
	// The stalled clients were pending: Close hung up on them.
	for i, s := range stalled {
		closedByServer(t, s, fmt.Sprintf("stalled client %d after Close", i))
	}
	// The connection already handed out stays open.
	exchange(t, c, d.conn, "still here")
}

func TestMuxClose(t *testing.T) {
	ca := newCA(t, "mesh CA")
	n := startMux(t, newPeer(t, ca, "server"), bothProtos...)

	// An Accept blocked before Close returns when it closes.
	blocked := make(chan error, 1)
	go func() {
		c, err := n.mux.Listener(meshtls.ProtoHTTP).Accept()
		if c != nil {
			c.Close()
		}
		blocked <- err
	}()

	// Closing one protocol's listener closes the whole Mux.
	if err := n.mux.Listener(meshtls.ProtoRaft).Close(); err != nil {
		t.Errorf("first Close (via the Raft listener): got error %v, want nil", err)
	}
	if err := n.mux.Close(); err != nil {
		t.Errorf("second Close: got error %v, want nil", err)
	}
	if err := n.mux.Listener(meshtls.ProtoHTTP).Close(); err != nil {
		t.Errorf("third Close (via the HTTP listener): got error %v, want nil", err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept blocked across Close: got error %v, want %v", err, net.ErrClosed)
		}
	case <-time.After(waitFor):
		t.Fatalf("Accept blocked across Close: no return within %v", waitFor)
	}
	for _, proto := range bothProtos {
		c, err := n.mux.Listener(proto).Accept()
		if c != nil || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept(%s) after Close: got (%v, %v), want (nil, %v)", proto, c, err, net.ErrClosed)
		}
		if got := n.mux.Listener(proto).Addr().String(); got != n.addr {
			t.Errorf("Listener(%s).Addr: got %s, want %s", proto, got, n.addr)
		}
	}
	if got := n.mux.Addr().String(); got != n.addr {
		t.Errorf("Addr: got %s, want %s", got, n.addr)
	}
	// The port is closed.
	if c, err := net.DialTimeout("tcp", n.addr, waitFor); err == nil {
		c.Close()
		t.Errorf("dial after Close: got a connection, want the port closed")
	}
}

func TestMuxListenerUnknownProto(t *testing.T) {
	ca := newCA(t, "mesh CA")
	n := startMux(t, newPeer(t, ca, "server"), meshtls.ProtoRaft)
	if l := n.mux.Listener(meshtls.ProtoHTTP); l != nil {
		t.Errorf("Listener(%s) of a Mux started without it: got %T %v, want nil", meshtls.ProtoHTTP, l, l)
	}
	if l := n.mux.Listener(meshtls.ProtoRaft); l == nil {
		t.Errorf("Listener(%s): got nil, want a listener", meshtls.ProtoRaft)
	}
}

// TestMuxNilOnErr: onErr is optional; refusals still close the connection.
func TestMuxNilOnErr(t *testing.T) {
	ca := newCA(t, "mesh CA")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	mux := meshtls.Listen(l, newPeer(t, ca, "server"), nil, meshtls.ProtoRaft)
	defer mux.Close()
	raw, err := net.DialTimeout("tcp", l.Addr().String(), waitFor)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer raw.Close()
	raw.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	closedByServer(t, raw, "plaintext client")

	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := mux.Listener(meshtls.ProtoRaft).Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := newPeer(t, ca, "good").Dial(l.Addr().String(), meshtls.ProtoRaft, waitFor)
	if err != nil {
		t.Fatalf("Dial after a refusal: got error %v, want nil", err)
	}
	defer c.Close()
	select {
	case s := <-accepted:
		defer s.Close()
		if s.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("accepted: got %v, want the good node's %v", s.RemoteAddr(), c.LocalAddr())
		}
	case <-time.After(waitFor):
		t.Fatalf("good node not accepted within %v", waitFor)
	}
}
