package meshtls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Mux is a node's peer port: it accepts TCP connections, completes a
// mutual-TLS handshake with each (only nodes of this mesh pass), and hands
// the connection to the listener of the protocol it negotiated.
type Mux struct {
	raw    net.Listener
	cfg    *tls.Config
	onErr  func(remote net.Addr, err error)
	protos map[string]*chanListener

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// Listen starts serving the peer port on raw for the given protocols.
// onErr, if not nil, hears each refused connection.
func Listen(raw net.Listener, p *Peer, onErr func(remote net.Addr, err error), protos ...string) *Mux {
	m := &Mux{
		raw: raw, cfg: p.ServerConfig(protos...), onErr: onErr,
		protos: map[string]*chanListener{}, done: make(chan struct{}),
	}
	for _, proto := range protos {
		m.protos[proto] = &chanListener{ch: make(chan net.Conn), done: m.done, closed: make(chan struct{}), addr: raw.Addr()}
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Listener yields the handshaken connections that negotiated proto (nil if
// the Mux was not started with proto).
func (m *Mux) Listener(proto string) net.Listener {
	if l, ok := m.protos[proto]; ok {
		return l
	}
	return nil // not a typed nil *chanListener, which would be != nil
}

// Addr is the peer port's address.
func (m *Mux) Addr() net.Addr { return m.raw.Addr() }

// Close stops accepting and closes every protocol's listener; connections
// already handed out stay open.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() { err = m.shut() })
	m.wg.Wait()
	return err
}

func (m *Mux) shut() error {
	close(m.done)
	return m.raw.Close()
}

// acceptLoop accepts until Close. A failing Accept (out of descriptors, say)
// is retried with backoff, as net/http does; a listener that is gone for
// good closes the Mux, so its listeners' Accept fails rather than hangs.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		c, err := m.raw.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				m.closeOnce.Do(func() { m.shut() })
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-m.done:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		m.wg.Add(1)
		go m.handshake(c)
	}
}

func (m *Mux) handshake(raw net.Conn) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	go func() { // Close interrupts handshakes in progress
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c := tls.Server(raw, m.cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		if !errors.Is(err, ErrPeer) {
			err = fmt.Errorf("%w: %w", ErrPeer, err)
		}
		if m.onErr != nil {
			m.onErr(raw.RemoteAddr(), err)
		}
		return
	}
	l := m.protos[c.ConnectionState().NegotiatedProtocol]
	if l == nil { // no ALPN offered: nothing to speak
		if m.onErr != nil {
			m.onErr(raw.RemoteAddr(), fmt.Errorf("%w: no protocol negotiated (want one of %v)", ErrPeer, m.cfg.NextProtos))
		}
		raw.Close()
		return
	}
	// The hand-off shares the handshake's deadline: a protocol nobody
	// accepts does not pile up connections.
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	case <-ctx.Done():
		c.Close()
	}
}

// chanListener is one protocol's side of a Mux.
type chanListener struct {
	ch        chan net.Conn
	done      chan struct{} // the Mux closed
	closed    chan struct{} // this protocol closed
	closeOnce sync.Once
	addr      net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops this protocol only: connections that negotiate it are then
// closed after their handshake. The port stays open until Mux.Close.
func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
