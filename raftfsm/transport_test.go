package raftfsm

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

func newTestStream(t *testing.T, key string) *authStream {
	t.Helper()
	return newAuthStream(listen(t), nil, []byte(key))
}

func addrOf(s *authStream) raft.ServerAddress { return raft.ServerAddress(s.Addr().String()) }

// serverSide accepts one connection on s and runs fn on it in a goroutine;
// the returned channel yields fn's error.
func serverSide(t *testing.T, s *authStream, fn func(net.Conn) error) <-chan error {
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

func wait(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(ioDeadline + 5*time.Second):
		t.Fatalf("%s: no result within %v", what, ioDeadline+5*time.Second)
		return nil
	}
}

func readExactly(c net.Conn, n int) (string, error) {
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestAuthStreamSameKey(t *testing.T) {
	tests := []struct {
		name        string
		serverFirst bool // the server writes before it reads
	}{
		{"server reads first", false},
		{"server writes first", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestStream(t, "cluster-secret")
			b := newTestStream(t, "cluster-secret")
			done := serverSide(t, b, func(c net.Conn) error {
				if tt.serverFirst {
					if _, err := c.Write([]byte("hello from server")); err != nil {
						return err
					}
				}
				got, err := readExactly(c, len("ping from client"))
				if err != nil {
					return err
				}
				if got != "ping from client" {
					return errors.New("server read " + got)
				}
				if !tt.serverFirst {
					if _, err := c.Write([]byte("hello from server")); err != nil {
						return err
					}
				}
				// A larger message, after the handshake.
				big := make([]byte, 1<<20)
				for i := range big {
					big[i] = byte(i)
				}
				_, err = c.Write(big)
				return err
			})

			c, err := a.Dial(addrOf(b), 5*time.Second)
			if err != nil {
				t.Fatalf("Dial: got error %v, want nil", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioDeadline))
			if _, err := c.Write([]byte("ping from client")); err != nil {
				t.Fatalf("client write: got error %v, want nil", err)
			}
			got, err := readExactly(c, len("hello from server"))
			if err != nil || got != "hello from server" {
				t.Fatalf("client read: got %q (err %v), want %q", got, err, "hello from server")
			}
			big, err := readExactly(c, 1<<20)
			if err != nil {
				t.Fatalf("client read big: got error %v, want nil", err)
			}
			for i := range len(big) {
				if big[i] != byte(i) {
					t.Fatalf("big message byte %d: got %d, want %d", i, big[i], byte(i))
				}
			}
			if err := wait(t, done, "server"); err != nil {
				t.Fatalf("server: got error %v, want nil", err)
			}
		})
	}
}

func TestAuthStreamWrongKey(t *testing.T) {
	a := newTestStream(t, "secret-one")
	b := newTestStream(t, "secret-two")
	done := serverSide(t, b, func(c net.Conn) error {
		_, err := c.Read(make([]byte, 1))
		if err == nil {
			return errors.New("server Read: got nil error")
		}
		// The failure sticks: writes fail too.
		if _, werr := c.Write([]byte("x")); werr == nil {
			return errors.New("server Write after failed handshake: got nil error")
		}
		return err
	})
	c, err := a.Dial(addrOf(b), 5*time.Second)
	if !errors.Is(err, ErrAuth) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial with another key: got error %v, want %v", err, ErrAuth)
	}
	if c != nil {
		t.Errorf("Dial with another key: got a conn, want nil")
	}
	if err := wait(t, done, "server"); !errors.Is(err, ErrAuth) {
		t.Fatalf("server-side Read: got error %v, want %v", err, ErrAuth)
	}
}

func TestAuthStreamRawGarbage(t *testing.T) {
	tests := []struct {
		name  string
		input string
		close bool // the client closes its write side after sending
	}{
		{"http request", "GET / HTTP/1.1\r\nHost: raft\r\nUser-Agent: curl\r\n\r\n", false},
		{"wrong magic same length", "OURCI-RAFT2\n0123456789abcdef", false},
		{"short then hang up", "OURCI", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestStream(t, "cluster-secret")
			done := serverSide(t, b, func(c net.Conn) error {
				_, err := c.Read(make([]byte, 64))
				return err
			})
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
			if err := wait(t, done, "server"); !errors.Is(err, ErrAuth) {
				t.Fatalf("server-side Read: got error %v, want %v", err, ErrAuth)
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
		})
	}
}

// TestAuthStreamReflection: a client that knows no secret but echoes the
// server's own proof back must be refused (the two proofs are labelled).
func TestAuthStreamReflection(t *testing.T) {
	b := newTestStream(t, "cluster-secret")
	done := serverSide(t, b, func(c net.Conn) error {
		_, err := c.Read(make([]byte, 1))
		return err
	})
	raw, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(ioDeadline))
	nonce := []byte("0123456789abcdef")
	if _, err := raw.Write(append([]byte(authMagic), nonce...)); err != nil {
		t.Fatalf("raw write: %v", err)
	}
	reply := make([]byte, nonceLen+sha256.Size)
	if _, err := io.ReadFull(raw, reply); err != nil {
		t.Fatalf("raw read of server proof: got error %v, want nil", err)
	}
	if _, err := raw.Write(reply[nonceLen:]); err != nil {
		t.Fatalf("raw write: %v", err)
	}
	if err := wait(t, done, "server"); !errors.Is(err, ErrAuth) {
		t.Fatalf("server-side Read after a reflected proof: got error %v, want %v", err, ErrAuth)
	}
}

func TestAuthStreamAddr(t *testing.T) {
	l := listen(t)
	if got := newAuthStream(l, nil, []byte("k")).Addr(); got.String() != l.Addr().String() {
		t.Errorf("Addr without advertise: got %v, want %v", got, l.Addr())
	}
	adv := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 7001}
	if got := newAuthStream(l, adv, []byte("k")).Addr(); got.String() != "10.0.0.7:7001" {
		t.Errorf("Addr with advertise: got %v, want 10.0.0.7:7001", got)
	}
}

func TestAuthStreamDialRefused(t *testing.T) {
	a := newTestStream(t, "k")
	l := listen(t)
	addr := l.Addr().String()
	l.Close()
	if c, err := a.Dial(raft.ServerAddress(addr), time.Second); err == nil {
		c.Close()
		t.Fatalf("Dial to a closed port: got a conn, want an error")
	}
}
