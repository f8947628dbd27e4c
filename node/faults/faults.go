package faults

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Faults decides which links are cut.
type Faults interface {
	// Cut reports whether the node named from cannot reach address to
	// (host:port as dialed or written to: a gossip address or a peer
	// port) now.
	Cut(from, to string) bool
}

// ErrCut is what a dial, write or read on a cut link fails with.
var ErrCut = errors.New("faults: link cut")

// From returns the function a node's transports ask for the links of the
// node named from; nil when f is nil (no faults: the transports keep
// their production paths).
func From(f Faults, from string) func(to string) bool {
	if f == nil {
		return nil
	}
	return func(to string) bool { return f.Cut(from, to) }
}

// Dial returns an error matching ErrCut when cut says to is cut, or else
// dials to with dial and wraps the connection (Conn).
func Dial(cut func(to string) bool, to string, dial func() (net.Conn, error)) (net.Conn, error) {
	if cut(to) {
		return nil, fmt.Errorf("dial %s: %w", to, ErrCut)
	}
	c, err := dial()
	if err != nil {
		return nil, err
	}
	return Conn(c, func() bool { return cut(to) }), nil
}

// Conn wraps c so that every Read and Write first asks cut; once the link
// is cut the connection is closed and fails with ErrCut.
func Conn(c net.Conn, cut func() bool) net.Conn {
	return &conn{Conn: c, cut: cut}
}

type conn struct {
	net.Conn
	cut func() bool
}

func (c *conn) check() error {
	if c.cut() {
		c.Conn.Close()
		return fmt.Errorf("%s: %w", c.Conn.RemoteAddr(), ErrCut)
	}
	return nil
}

func (c *conn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if err == nil {
		// A read that blocked across the cut must not deliver what
		// arrived before it as if the link were still up.
		if cerr := c.check(); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Unwrap returns the connection underneath (for callers that look for a
// *tls.Conn or a *net.TCPConn).
func (c *conn) Unwrap() net.Conn { return c.Conn }

// Net is a Faults for tests: nodes register the addresses they are
// reached at under their names, and the test cuts and heals links
// between names. The zero value cuts nothing; it is safe for concurrent use.
type Net struct {
	mu    sync.Mutex
	names map[string]string  // address → node name
	cuts  map[[2]string]bool // {from, to} node names
	log   []string           // what was cut and healed, for failure messages
}

// Name registers addr (host:port) as one of node's addresses.
func (f *Net) Name(addr, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.names == nil {
		f.names = map[string]string{}
	}
	f.names[addr] = node
}

// Cut implements Faults.
func (f *Net) Cut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	name, ok := f.names[to]
	if !ok {
		return false
	}
	return f.cuts[[2]string{from, name}]
}

// Partition cuts every link between a node of side a and one of side b,
// both ways.
func (f *Net) Partition(a, b []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cuts == nil {
		f.cuts = map[[2]string]bool{}
	}
	for _, x := range a {
		for _, y := range b {
			f.cuts[[2]string{x, y}] = true
			f.cuts[[2]string{y, x}] = true
		}
	}
	f.log = append(f.log, fmt.Sprintf("partition %v | %v", a, b))
}

// Block cuts the link from node from to node to, one way only: from
// cannot dial or send to to, while to still dials from (a firewall that
// drops what one side opens).
func (f *Net) Block(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cuts == nil {
		f.cuts = map[[2]string]bool{}
	}
	f.cuts[[2]string{from, to}] = true
	f.log = append(f.log, fmt.Sprintf("block %s → %s", from, to))
}

// Heal restores every link.
func (f *Net) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts = nil
	f.log = append(f.log, "heal")
}

// String lists the partitions and heals so far.
func (f *Net) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.log)
}
