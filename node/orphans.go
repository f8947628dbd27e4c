package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A host task runs in its own process group. If the node is killed (-9),
// those groups live on. The runner records each group in DATA_DIR/run as
// "PID STARTTIME" (STARTTIME from /proc, so a recycled PID is never hit),
// and a node that starts again kills the groups its previous life left.

func (n *Node) runDir() string { return filepath.Join(n.cfg.DataDir, "run") }

// recordGroup notes a running attempt's process group; the returned func
// forgets it.
func (n *Node) recordGroup(task string, attempt, pid int) func() {
	st, err := startTime(pid)
	if err != nil {
		return func() {}
	}
	if err := os.MkdirAll(n.runDir(), 0o700); err != nil {
		return func() {}
	}
	p := filepath.Join(n.runDir(), fmt.Sprintf("%s.%d.pid", task, attempt))
	if err := os.WriteFile(p, []byte(fmt.Sprintf("%d %d\n", pid, st)), 0o600); err != nil {
		return func() {}
	}
	return func() { os.Remove(p) }
}

// killOrphans kills the process groups a previous life of this node left
// running, and returns how many it found alive.
func (n *Node) killOrphans() int {
	entries, err := os.ReadDir(n.runDir())
	if err != nil {
		return 0
	}
	killed := 0
	for _, e := range entries {
		p := filepath.Join(n.runDir(), e.Name())
		b, err := os.ReadFile(p)
		os.Remove(p)
		if err != nil {
			continue
		}
		var pid int
		var st uint64
		if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &st); err != nil || pid <= 1 {
			continue
		}
		if now, err := startTime(pid); err != nil || now != st {
			continue // gone, or the PID now belongs to someone else
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err == nil {
			killed++
			n.log.Warn("killed a task process group left by a previous run of this node", "pid", pid, "attempt_file", e.Name())
		}
	}
	return killed
}

// startTime reads a process's start time (clock ticks since boot).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("node: unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("node: short /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 overall
}
