package faults

import (
	"errors"
	"net"
	"testing"
)

func TestNetCutsRegisteredLinksBothWays(t *testing.T) {
	var f Net
	f.Name("127.0.0.1:1", "a")
	f.Name("127.0.0.1:2", "b")
	f.Name("127.0.0.1:3", "c")
	if f.Cut("a", "127.0.0.1:2") {
		t.Fatal("a→b cut before any partition")
	}
	f.Partition([]string{"a"}, []string{"b"})
	for _, tt := range []struct {
		from, to string
		want     bool
	}{
		{"a", "127.0.0.1:2", true},
		{"b", "127.0.0.1:1", true},
		{"a", "127.0.0.1:3", false},
		{"c", "127.0.0.1:2", false},
		{"a", "127.0.0.1:9", false}, // unknown address: never cut
	} {
		if got := f.Cut(tt.from, tt.to); got != tt.want {
			t.Errorf("Cut(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	f.Heal()
	if f.Cut("a", "127.0.0.1:2") {
		t.Error("a→b still cut after Heal")
	}
}

func TestFromNilIsNil(t *testing.T) {
	if From(nil, "a") != nil {
		t.Fatal("From(nil) returned a function: production paths would change")
	}
}

func TestConnBreaksOnCut(t *testing.T) {
	var cut bool
	dialed := 0
	a, b := net.Pipe()
	defer b.Close()
	c, err := Dial(func(string) bool { return cut }, "peer", func() (net.Conn, error) { dialed++; return a, nil })
	if err != nil || dialed != 1 {
		t.Fatalf("Dial on an intact link: %v (dialed %d)", err, dialed)
	}
	go b.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("Read on an intact link: %v", err)
	}
	cut = true
	if _, err := c.Write([]byte("y")); !errors.Is(err, ErrCut) {
		t.Errorf("Write after the cut: got %v, want ErrCut", err)
	}
	if _, err := b.Read(buf); err == nil {
		t.Error("the connection under a cut link is still open")
	}
	if _, err := Dial(func(string) bool { return cut }, "peer", func() (net.Conn, error) { dialed++; return nil, nil }); !errors.Is(err, ErrCut) || dialed != 1 {
		t.Errorf("Dial on a cut link: got %v (dialed %d), want ErrCut without dialing", err, dialed)
	}
}

func TestBlockCutsOneWay(t *testing.T) {
	var f Net
	f.Name("127.0.0.1:1", "a")
	f.Name("127.0.0.1:2", "b")
	f.Block("a", "b")
	for _, tt := range []struct {
		from, to string
		want     bool
	}{
		{"a", "127.0.0.1:2", true},
		{"b", "127.0.0.1:1", false},
	} {
		if got := f.Cut(tt.from, tt.to); got != tt.want {
			t.Errorf("after Block(a, b): Cut(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	f.Heal()
	if f.Cut("a", "127.0.0.1:2") {
		t.Error("a→b still cut after Heal")
	}
}
