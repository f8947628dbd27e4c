// Package ports hands tests loopback ports that nothing else on the
// machine hands out while they hold them, so that a node can be stopped
// and started again on the very same ports.
//
// Why not ":0": a port the kernel picks lies in its ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range). Once the node holding it
// stops, the kernel may give it to any other socket at once: another
// test's ":0" listener, or the local end of any outgoing connection (an
// HTTP client, a Raft or gossip dial). The node's restart on that port
// then fails with "address already in use", and nothing waits long
// enough to get it back: a listener keeps it for its test's life.
//
// Reserve picks ports below (or above) the ephemeral range, which the
// kernel never picks itself, probes each for TCP and UDP, and locks it
// for this process with flock on a file under os.TempDir()/ourci-ports,
// so that test processes running at the same time (go test runs several
// packages at once) skip it. The lock ends with Release or with the
// process; the kernel drops it even on kill -9.
//
// The package imports nothing of OurCI and not package testing, so every
// package's tests can use it and the bench command too.
package ports

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// minPool is the fewest ports outside the ephemeral range worth picking
// from; with fewer, Reserve locks ports the kernel picks (see pool).
const minPool = 2048

// lowest is the lowest port Reserve hands out: below it lie well-known
// services (databases, proxies, 8080) that may start at any time.
const lowest = 10000

var (
	mu   sync.Mutex
	held = map[int]*os.File{} // port → its locked file
)

// Dir is where the lock files live.
func Dir() string { return filepath.Join(os.TempDir(), "ourci-ports") }

// Reserve returns n distinct ports free on host (an IP such as
// "127.0.0.1") for both TCP and UDP, none in the kernel's ephemeral range
// when the range leaves room, each locked until Release.
func Reserve(host string, n int) ([]int, error) {
	if err := os.MkdirAll(Dir(), 0o777); err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	lo, hi, err := pool()
	if err != nil {
		return nil, err
	}
	var got []int
	size := hi - lo + 1
	if size <= 0 {
		// No room outside the ephemeral range: the kernel picks, and the
		// lock still keeps other reserving processes off.
		for tries := 0; len(got) < n; tries++ {
			if tries > 100*n {
				Release(got...)
				return nil, fmt.Errorf("ports: no %d free ports on %s from the kernel after %d tries", n, host, tries)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				Release(got...)
				return nil, fmt.Errorf("ports: %w", err)
			}
			p := l.Addr().(*net.TCPAddr).Port
			l.Close()
			if take(host, p) {
				got = append(got, p)
			}
		}
		return got, nil
	}
	start := rand.IntN(size)
	for k := 0; k < size && len(got) < n; k++ {
		p := lo + (start+k)%size
		if take(host, p) {
			got = append(got, p)
		}
	}
	if len(got) < n {
		Release(got...)
		return nil, fmt.Errorf("ports: only %d of %d ports free on %s in %d-%d", len(got), n, host, lo, hi)
	}
	return got, nil
}

// pool returns the ports Reserve picks from: below the ephemeral range if
// that leaves minPool ports above lowest, else above it; hi < lo when
// neither does.
func pool() (lo, hi int, err error) {
	elo, ehi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil || a > z {
				return 0, 0, fmt.Errorf("ports: ip_local_port_range %q: want two ports, low first", strings.TrimSpace(string(b)))
			}
			elo, ehi = a, z
		}
	}
	switch {
	case elo-lowest >= minPool:
		return max(lowest, elo-16384), elo - 1, nil
	case 65535-ehi >= minPool:
		return ehi + 1, 65535, nil
	}
	return 1, 0, nil
}

// take locks port p and probes it on host; it reports whether p is now
// this process's.
func take(host string, p int) bool {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := held[p]; ok {
		return false
	}
	path := filepath.Join(Dir(), strconv.Itoa(p))
	// Read-only is enough for flock, and opens a file another user made.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close() // another process holds it
		return false
	}
	// The holder before us may have removed the file between our open and
	// our lock (Release removes it, then unlocks): then the lock is on a
	// file nobody else looks at, and a third process may hold the new one.
	if st, err := os.Stat(path); err != nil || !sameFile(f, st) {
		f.Close()
		return false
	}
	if !free(host, p) {
		// Taken by something that does not reserve (a service on a fixed
		// port): give the lock back, removing the file as Release does.
		os.Remove(path)
		f.Close()
		return false
	}
	held[p] = f
	return true
}

func sameFile(f *os.File, st os.FileInfo) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(fst, st)
}

// free reports whether p can be bound on host for TCP and for UDP (a
// gossip port is both) right now.
func free(host string, p int) bool {
	addr := net.JoinHostPort(host, strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Release gives ports back; ports this process does not hold are ignored.
// The sockets on them should be closed first.
func Release(ports ...int) {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range ports {
		f, ok := held[p]
		if !ok {
			continue
		}
		delete(held, p)
		// Remove, then unlock: a process that opened the file before the
		// removal and locks it after sees it is gone (take's check).
		os.Remove(f.Name())
		f.Close()
	}
}

// InUse reports whether err is a bind that failed because another socket
// has the address ("address already in use"), also through errors that
// carry only the text (memberlist's).
func InUse(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
}

// Holders describes the sockets on this machine's network namespace whose
// local port is p ("tcp 127.0.0.1:40000 → 127.0.0.1:7946 ESTABLISHED"), for a
// failure message: who took a port.
func Holders(p int) string {
	var out []string
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile("/proc/net/" + f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 4 {
				continue
			}
			local, lp, ok := procAddr(fl[1])
			if !ok || lp != p {
				continue
			}
			remote, _, _ := procAddr(fl[2])
			out = append(out, fmt.Sprintf("%s %s → %s %s", f, local, remote, tcpState(f, fl[3])))
		}
	}
	if len(out) == 0 {
		return "no socket holds it now"
	}
	return strings.Join(out, "; ")
}

// procAddr decodes a /proc/net address ("0100007F:1F90").
func procAddr(s string) (string, int, bool) {
	h, ps, ok := strings.Cut(s, ":")
	if !ok {
		return s, 0, false
	}
	port, err := strconv.ParseUint(ps, 16, 16)
	if err != nil {
		return s, 0, false
	}
	if len(h)%8 != 0 {
		return s, 0, false
	}
	// The kernel prints each 32-bit word of the address as a number in
	// host byte order.
	raw := make([]byte, len(h)/2)
	for i := 0; i < len(h); i += 8 {
		w, err := strconv.ParseUint(h[i:i+8], 16, 32)
		if err != nil {
			return s, 0, false
		}
		binary.NativeEndian.PutUint32(raw[i/2:], uint32(w))
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(port))), int(port), true
}

var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

func tcpState(proto, st string) string {
	if strings.HasPrefix(proto, "udp") {
		return "bound"
	}
	if s, ok := tcpStates[st]; ok {
		return s
	}
	return "state " + st
}
