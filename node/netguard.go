package node

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourci/ourci/node/lograte"
)

// Connection limits of the API servers. The public listener (--http)
// takes connections from anyone who can reach it, so each client address
// may hold only so many at once (connLimit), and every connection times
// out: headers within HTTPHeaderTimeout, the next request on a keep-alive
// connection within HTTPIdleTimeout, a request's body and its response
// within HTTPReadTimeout and HTTPWriteTimeout unless the route streams
// (streams). The peer port's API server has the same timeouts; only nodes
// of the mesh get past its handshake, so it has no per-client cap.

// Defaults of the connection limits (Config).
const (
	DefaultHTTPHeaderTimeout = 10 * time.Second
	DefaultHTTPIdleTimeout   = 2 * time.Minute
	DefaultHTTPReadTimeout   = time.Minute
	DefaultHTTPWriteTimeout  = time.Minute
	// DefaultMaxConnsPerClient is the cap of open public API connections
	// per client address (IPv4 address, IPv6 /64) off this machine: a
	// browser opens about six, the CLI one or two.
	DefaultMaxConnsPerClient = 64
	// DefaultMaxConnsLoopback is the cap for a loopback address, where the
	// node's own tasks (spawns, blob transfers, logs -f, several per
	// slot), its CLI and any reverse proxy in front of the API connect:
	// generous, but below the file descriptors a node has (Go raises the
	// soft limit to the hard one, commonly 4096 or more).
	DefaultMaxConnsLoopback = 1024
)

// newServer is an API server with the node's timeouts; per-request read
// and write deadlines are set by withDeadlines.
func (n *Node) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           n.withDeadlines(h),
		ReadHeaderTimeout: n.cfg.HTTPHeaderTimeout,
		IdleTimeout:       n.cfg.HTTPIdleTimeout,
	}
}

// withDeadlines bounds a request's body and its response, except on the
// routes that stream (streams). The server itself sets no ReadTimeout or
// WriteTimeout, which would also cut the streams.
func (n *Node) withDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !streams(r) {
			rc := http.NewResponseController(w)
			now := time.Now()
			if d := n.cfg.HTTPReadTimeout; d > 0 {
				rc.SetReadDeadline(now.Add(d))
			}
			if d := n.cfg.HTTPWriteTimeout; d > 0 {
				rc.SetWriteDeadline(now.Add(d))
			}
		}
		h.ServeHTTP(w, r)
	})
}

// streams tells the requests that may rightly take longer than a read or
// write timeout: blob transfers (either way, and BLOB_URL), task logs (and
// logs -f, also a node's read of another's copy), the UI's event streams, blocking job queries (?index=),
// snapshot save and restore, and a drain, which waits for running tasks.
func streams(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1/blob"), strings.HasPrefix(p, "/v1/internal/blobs/"),
		strings.HasPrefix(p, "/v1/operator/snapshot"), p == "/v1/drain",
		strings.HasSuffix(p, "/log"), strings.HasSuffix(p, "/events"), strings.Contains(p, "/blobs/"):
		return true
	case strings.HasPrefix(p, "/v1/jobs/") && r.URL.Query().Has("index"),
		strings.HasPrefix(p, "/v1/internal/logs/") && r.Method == http.MethodGet: // a follow read from a copy's holder
		return true
	}
	return false
}

// connLimit is the public listener with a cap on the connections open at
// once per client address. A connection over the cap is answered 503 and
// closed at once; the refusal is counted and logged (at most once per
// address per interval).
type connLimit struct {
	net.Listener
	perClient, loopback int // caps; < 0: none
	onRefuse            func(client string, open int)

	mu   sync.Mutex
	open map[string]int
}

func newConnLimit(ln net.Listener, perClient, loopback int, onRefuse func(client string, open int)) *connLimit {
	return &connLimit{Listener: ln, perClient: perClient, loopback: loopback, onRefuse: onRefuse, open: map[string]int{}}
}

// refusal is what a connection over the cap reads before it is closed.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 62\r\n\r\ntoo many open connections from your address; close some first\n"

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, capOf := l.client(c.RemoteAddr())
		l.mu.Lock()
		open := l.open[key]
		if capOf >= 0 && open >= capOf {
			l.mu.Unlock()
			// A fresh socket's send buffer takes this without blocking;
			// the deadline covers the odd case where it would not.
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write([]byte(refusal))
			c.Close()
			if l.onRefuse != nil {
				l.onRefuse(key, open)
			}
			continue
		}
		l.open[key] = open + 1
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimit) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] <= 1 {
		delete(l.open, key)
	} else {
		l.open[key]--
	}
}

// client is the key a connection counts under (an IPv4 address, an IPv6
// /64: one host can have a whole /64) and its cap.
func (l *connLimit) client(a net.Addr) (string, int) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String(), l.perClient
	}
	ip := ta.IP
	if ip.IsLoopback() {
		return ip.String(), l.loopback
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String(), l.perClient
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String(), l.perClient
}

// Open is how many connections the client key holds now (tests).
func (l *connLimit) Open(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[key]
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// refusals counts and throttles the log lines about what outsiders can
// cause at will: connections the public API or the peer port refused.
type refusals struct {
	http atomic.Uint64 // over the per-client cap
	log  lograte.Limiter
}

// connRefused logs (throttled per client) a connection over the cap.
func (n *Node) connRefused(client string, open int) {
	n.refused.http.Add(1)
	if ok, suppressed, key := n.refused.log.Allow("http " + client); ok {
		args := []any{"client", strings.TrimPrefix(key, "http "), "open", open}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		n.log.Warn("http: refused a connection: its client address already holds its cap of open connections (--max-conns-per-client, --max-conns-loopback)", args...)
	}
}

// peerRefusedConn counts and logs (throttled per host) a connection the
// peer port refused.
func (n *Node) peerRefusedConn(remote net.Addr, err error) {
	n.peerRefused.Add(1)
	host := remote.String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	if ok, suppressed, key := n.refused.log.Allow("peer " + host); ok {
		args := []any{"remote", remote.String(), "err", err}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed, "from", strings.TrimPrefix(key, "peer "))
		}
		n.log.Warn("peer port: refused a connection that is not from a node of this mesh", args...)
	}
}

// HTTPRefused is how many connections the public API refused for the
// per-client cap.
func (n *Node) HTTPRefused() uint64 { return n.refused.http.Load() }

// GossipBadPackets is how many gossip packets and streams this node
// refused or could not use.
func (n *Node) GossipBadPackets() uint64 { return n.gossip.BadPackets() }

func (c Config) netDefaults() (Config, error) {
	for _, d := range []*time.Duration{&c.HTTPHeaderTimeout, &c.HTTPIdleTimeout, &c.HTTPReadTimeout, &c.HTTPWriteTimeout} {
		if *d < 0 {
			return c, fmt.Errorf("%w: negative HTTP timeout %v", ErrConfig, *d)
		}
	}
	if c.HTTPHeaderTimeout == 0 {
		c.HTTPHeaderTimeout = DefaultHTTPHeaderTimeout
	}
	if c.HTTPIdleTimeout == 0 {
		c.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.HTTPReadTimeout == 0 {
		c.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if c.HTTPWriteTimeout == 0 {
		c.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if c.MaxConnsLoopback == 0 {
		c.MaxConnsLoopback = DefaultMaxConnsLoopback
	}
	if c.WebhookInflight == 0 {
		c.WebhookInflight = DefaultWebhookInflight
	}
	if c.WebhookInflight < 0 {
		return c, fmt.Errorf("%w: negative webhook in-flight cap", ErrConfig)
	}
	if c.LogEvery == 0 {
		c.LogEvery = lograte.DefaultEvery
	}
	return c, nil
}
