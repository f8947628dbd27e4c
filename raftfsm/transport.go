package raftfsm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// authStream is a raft.StreamLayer over TCP in which both ends prove that
// they hold the cluster secret before a byte of Raft traffic flows: a mutual
// HMAC-SHA256 challenge over fresh nonces from both sides. It authenticates;
// it does not encrypt (mutual TLS is the planned replacement).
type authStream struct {
	net.Listener
	advertise net.Addr
	key       []byte
}

const (
	authMagic   = "OURCI-RAFT1\n"
	nonceLen    = 16
	authTimeout = 5 * time.Second
)

// ErrAuth marks a peer that failed the Raft handshake.
var ErrAuth = errors.New("raftfsm: raft peer failed authentication")

func newAuthStream(l net.Listener, advertise net.Addr, key []byte) *authStream {
	return &authStream{Listener: l, advertise: advertise, key: key}
}

func (a *authStream) Addr() net.Addr {
	if a.advertise != nil {
		return a.advertise
	}
	return a.Listener.Addr()
}

// Dial connects and completes the client side of the handshake.
func (a *authStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if err := a.clientHandshake(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Accept returns connections whose server side of the handshake runs on
// first use, so one slow or hostile peer cannot stall the accept loop.
func (a *authStream) Accept() (net.Conn, error) {
	c, err := a.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: c, s: a}, nil
}

func (a *authStream) mac(label string, n1, n2 []byte) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(label))
	m.Write(n1)
	m.Write(n2)
	return m.Sum(nil)
}

// client: magic+nc → ; ← ns+mac("server",nc,ns) ; mac("client",ns,nc) →
func (a *authStream) clientHandshake(c net.Conn) error {
	c.SetDeadline(time.Now().Add(authTimeout))
	defer c.SetDeadline(time.Time{})
	nc := make([]byte, nonceLen)
	rand.Read(nc)
	if _, err := c.Write(append([]byte(authMagic), nc...)); err != nil {
		return fmt.Errorf("raftfsm: handshake with %s: %w", c.RemoteAddr(), err)
	}
	buf := make([]byte, nonceLen+sha256.Size)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAuth, c.RemoteAddr(), err)
	}
	ns := buf[:nonceLen]
	if !hmac.Equal(buf[nonceLen:], a.mac("server", nc, ns)) {
		return fmt.Errorf("%w: %s does not hold the cluster secret", ErrAuth, c.RemoteAddr())
	}
	_, err := c.Write(a.mac("client", ns, nc))
	return err
}

func (a *authStream) serverHandshake(c net.Conn) error {
	c.SetDeadline(time.Now().Add(authTimeout))
	defer c.SetDeadline(time.Time{})
	buf := make([]byte, len(authMagic)+nonceLen)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAuth, c.RemoteAddr(), err)
	}
	if string(buf[:len(authMagic)]) != authMagic {
		return fmt.Errorf("%w: %s: not an OurCI raft peer", ErrAuth, c.RemoteAddr())
	}
	nc := buf[len(authMagic):]
	ns := make([]byte, nonceLen)
	rand.Read(ns)
	if _, err := c.Write(append(ns, a.mac("server", nc, ns)...)); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAuth, c.RemoteAddr(), err)
	}
	if !hmac.Equal(got, a.mac("client", ns, nc)) {
		return fmt.Errorf("%w: %s does not hold the cluster secret", ErrAuth, c.RemoteAddr())
	}
	return nil
}

// serverConn runs the server handshake once, before the first read or write.
type serverConn struct {
	net.Conn
	s    *authStream
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		if c.err = c.s.serverHandshake(c.Conn); c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
