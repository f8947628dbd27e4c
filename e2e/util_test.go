package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/nodetest/ports"
)

// freePorts returns 3*n distinct ports free on 127.0.0.1 (per node: gossip,
// raft and http; each free for TCP and UDP), reserved until the test ends
// (package ports): outside the kernel's ephemeral range and locked against
// other test processes, so no socket takes one before the node binds it
// or while the node is down for a restart on the same ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	return reservePorts(t, "127.0.0.1", 3*n)
}

// reservePorts reserves n ports on ip until the test ends. The release
// may run before the cleanup that stops a node on them: harmless, a
// bound port is never handed out again.
func reservePorts(t testing.TB, ip string, n int) []int {
	t.Helper()
	p, err := ports.Reserve(ip, n)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	// Release what was reserved, whatever a caller does to the slice it
	// got (a test may put another port in it).
	held := slices.Clone(p)
	t.Cleanup(func() { ports.Release(held...) })
	return p
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
