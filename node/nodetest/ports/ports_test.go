package ports

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestReserveOutsideTheEphemeralRange(t *testing.T) {
	lo, hi, err := pool()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Reserve("127.0.0.1", 6)
	if err != nil {
		t.Fatal(err)
	}
	defer Release(got...)
	seen := map[int]bool{}
	for _, p := range got {
		if seen[p] {
			t.Errorf("port %d handed out twice in %v", p, got)
		}
		seen[p] = true
		if hi >= lo && (p < lo || p > hi) {
			t.Errorf("port %d outside the pool %d-%d", p, lo, hi)
		}
		// Free for both protocols: a gossip port is TCP and UDP.
		if !free("127.0.0.1", p) {
			t.Errorf("reserved port %d cannot be bound", p)
		}
	}
}

// A port this process holds is locked for every other: flock conflicts
// between open files, in this process as in another.
func TestReservedPortIsLockedUntilReleased(t *testing.T) {
	got, err := Reserve("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	p := got[0]
	if take("127.0.0.1", p) {
		t.Errorf("port %d reserved twice", p)
	}
	path := filepath.Join(Dir(), strconv.Itoa(p))
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("lock file of a held port: %v", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	f.Close()
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("locking held port %d's file from another open file: got %v, want EWOULDBLOCK", p, err)
	}
	Release(p)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file of released port %d: got %v, want it removed", p, err)
	}
	if !take("127.0.0.1", p) {
		t.Errorf("released port %d cannot be reserved again", p)
	}
	Release(p)
}

// A port some socket holds (not through this package) is skipped.
func TestReserveSkipsABoundPort(t *testing.T) {
	got, err := Reserve("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	p := got[0]
	Release(p)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if take("127.0.0.1", p) {
		Release(p)
		t.Errorf("port %d, bound by a listener, was reserved", p)
	}
	if h := Holders(p); !strings.Contains(h, fmt.Sprintf("127.0.0.1:%d", p)) || !strings.Contains(h, "LISTEN") {
		t.Errorf("Holders(%d) = %q, want the listener on 127.0.0.1:%d", p, h, p)
	}
}

func TestProcAddr(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		port int
		ok   bool
	}{
		{"0100007F:1F90", "127.0.0.1:8080", 8080, true},
		{"00000000:0000", "0.0.0.0:0", 0, true},
		{"00000000000000000000000001000000:0050", "[::1]:80", 80, true},
		{"0100007F", "0100007F", 0, false},
		{"zz00007F:1F90", "zz00007F:1F90", 0, false},
	} {
		got, port, ok := procAddr(tt.in)
		if got != tt.want || port != tt.port || ok != tt.ok {
			t.Errorf("procAddr(%q) = %q, %d, %v; want %q, %d, %v", tt.in, got, port, ok, tt.want, tt.port, tt.ok)
		}
	}
}

func TestInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, bindErr := net.Listen("tcp", l.Addr().String())
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"a bind on a taken port", bindErr, true},
		{"wrapped", fmt.Errorf("node: http listen: %w", bindErr), true},
		{"text only (memberlist)", errors.New(`Failed to start TCP listener on "127.0.0.1" port 1: listen tcp 127.0.0.1:1: bind: address already in use`), true},
		{"another error", errors.New("node: data dir: permission denied"), false},
	} {
		if got := InUse(tt.err); got != tt.want {
			t.Errorf("%s: InUse(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
