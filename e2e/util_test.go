package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// freePorts returns 3*n distinct ports free on 127.0.0.1 (per node: gossip,
// free for both TCP and UDP, then raft and http, free for TCP).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var ports []int
	for len(ports) < 3*n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if len(ports)%3 == 0 { // a gossip port: UDP too
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				continue // keep the TCP listener held so the port is not offered again
			}
			held = append(held, u)
		}
		ports = append(ports, port)
	}
	return ports
}

// cleanEnv is this process's environment without OURCI_* variables, so that a
// test run inside an OurCI task does not talk to the outer mesh.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OURCI_") {
			env = append(env, kv)
		}
	}
	return env
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
