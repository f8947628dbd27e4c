package e2e

// More ways for a fault mesh's nodes to break, for the chaos suite
// (chaos_test.go): a data dir on a small tmpfs that can be filled, clean
// stops (SIGTERM), machine crashes (SIGKILL of the node and of every task
// process it started), SIGSTOP/SIGCONT, wiping a data dir, and ageing one
// (moving the files' times back, as if the mesh had run for months). Like
// the rest of faultMesh, nothing here calls t.Fatal from a goroutine.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of mib MiB on node i's data dir and unmounts it
// in t.Cleanup (after the nodes are killed, before the temp dir goes). A
// failure is logged, not fatal: the node then runs on the ordinary disk.
func (m *faultMesh) mountTmpfs(t *testing.T, i, mib int) {
	n := m.nodes[i]
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		t.Logf("tmpfs for %s: %v", n.name, err)
		return
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", mib), "tmpfs", n.dataDir).CombinedOutput()
	if err != nil {
		t.Logf("tmpfs for %s NOT mounted (the disk-full fault cannot run): mount: %v: %s", n.name, err, strings.TrimSpace(string(out)))
		return
	}
	n.tmpfs = true
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", n.dataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", n.dataDir, err, strings.TrimSpace(string(out)))
		}
	})
}

// pid returns node i's process ID while it runs, else 0.
func (m *faultMesh) pid(i int) int {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up || n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// everStarted reports whether node i was ever started (spares are not
// until a scenario adds them).
func (m *faultMesh) everStarted(i int) bool {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lives > 0
}

// note appends a line about what the test did to node i's log.
func (m *faultMesh) note(i int, format string, args ...any) {
	if f, err := os.OpenFile(m.nodes[i].logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		fmt.Fprintf(f, "==== fault test: %s %s at %s\n", m.nodes[i].name, fmt.Sprintf(format, args...), time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
}

// stop stops node i cleanly (SIGTERM) and waits up to timeout for it to
// exit; past that it is SIGKILLed and stop says so. The moment it exited is
// recorded with the kills: its running attempts were stopped then.
func (m *faultMesh) stop(i int, timeout time.Duration) error {
	n := m.nodes[i]
	n.mu.Lock()
	if !n.up {
		n.mu.Unlock()
		return fmt.Errorf("%s is not running", n.name)
	}
	cmd, exited := n.cmd, n.exited
	n.up = false
	paused := n.paused
	n.paused = false
	n.stopSentAt = append(n.stopSentAt, time.Now().UnixNano())
	n.mu.Unlock()
	m.note(i, "sent SIGTERM")
	cmd.Process.Signal(syscall.SIGTERM)
	if paused {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	var err error
	select {
	case <-exited:
	case <-time.After(timeout):
		err = fmt.Errorf("%s did not exit within %v of SIGTERM; SIGKILLed", n.name, timeout)
		cmd.Process.Kill()
		<-exited
	}
	n.mu.Lock()
	n.killedAt = append(n.killedAt, time.Now().UnixNano())
	werr := n.waitErr
	n.mu.Unlock()
	m.note(i, "exited after SIGTERM (%v)", werr)
	return err
}

// crash is a machine crash of node i: the node process and every task
// process it started die at once (SIGKILL), so nothing of its attempts runs
// on. It returns how many task process groups it killed. (kill, by
// contrast, kills the node process only and leaves its tasks running.)
func (m *faultMesh) crash(i int) (groups int, err error) {
	n := m.nodes[i]
	n.mu.Lock()
	if !n.up {
		n.mu.Unlock()
		return 0, nil
	}
	cmd, exited := n.cmd, n.exited
	n.up, n.paused = false, false
	n.mu.Unlock()
	pid := cmd.Process.Pid
	// Frozen first, so that it starts no task between the look at its
	// children and the kill.
	syscall.Kill(pid, syscall.SIGSTOP)
	faultPoll(2*time.Second, 5*time.Millisecond, func() (bool, string) { st := procState(pid); return st == 'T' || st == 't', "" })
	pgids := childGroups(pid)
	cmd.Process.Kill()
	<-exited
	for _, g := range pgids {
		syscall.Kill(-g, syscall.SIGKILL)
	}
	err = faultPoll(10*time.Second, 10*time.Millisecond, func() (bool, string) {
		left := groupMembers(pgids)
		return len(left) == 0, fmt.Sprintf("task processes of %s still alive after SIGKILL: %v", n.name, left)
	})
	n.mu.Lock()
	n.killedAt = append(n.killedAt, time.Now().UnixNano())
	n.mu.Unlock()
	m.note(i, "crashed: node and %d task process groups SIGKILLed", len(pgids))
	return len(pgids), err
}

// pause SIGSTOPs node i's process (its tasks run on); resume SIGCONTs it.
func (m *faultMesh) pause(i int) error {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up || n.paused {
		return fmt.Errorf("%s: cannot pause (up %v, paused %v)", n.name, n.up, n.paused)
	}
	n.paused = true
	m.note(i, "SIGSTOP")
	return n.cmd.Process.Signal(syscall.SIGSTOP)
}

func (m *faultMesh) resume(i int) error {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up || !n.paused {
		return nil
	}
	n.paused = false
	m.note(i, "SIGCONT")
	return n.cmd.Process.Signal(syscall.SIGCONT)
}

func (m *faultMesh) isPaused(i int) bool {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// wipe deletes everything in node i's data dir (which stays, as a mount
// point if it is a tmpfs). The node must be down.
func (m *faultMesh) wipe(i int) error {
	n := m.nodes[i]
	if m.isUp(i) {
		return fmt.Errorf("%s runs: not wiping its data dir", n.name)
	}
	entries, err := os.ReadDir(n.dataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(n.dataDir, e.Name())); err != nil {
			return err
		}
	}
	m.note(i, "data dir wiped (%d entries removed)", len(entries))
	return nil
}

// age moves the modification times of node i's blob copies and task logs
// back by d, as if they had been written d ago: collection spares young
// files (10 minutes), so only an aged data dir shows what a node deletes
// after running for months. The node must be down. It returns how many
// files and directories it touched.
func (m *faultMesh) age(i int, d time.Duration) (int, error) {
	n := m.nodes[i]
	if m.isUp(i) {
		return 0, fmt.Errorf("%s runs: not ageing its data dir", n.name)
	}
	count := 0
	for _, sub := range []string{filepath.Join("blobs", "sha256"), "logs"} {
		root := filepath.Join(n.dataDir, sub)
		err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if p == root {
				return nil
			}
			t := fi.ModTime().Add(-d)
			if err := os.Chtimes(p, t, t); err != nil {
				return err
			}
			count++
			return nil
		})
		if err != nil {
			return count, err
		}
	}
	m.note(i, "data dir aged by %v (%d blob and log entries)", d, count)
	return count, nil
}

// fillerPath is the file that fills a node's tmpfs.
func (m *faultMesh) fillerPath(i int) string {
	return filepath.Join(m.nodes[i].dataDir, ".fault-filler")
}

// fill writes a file into node i's tmpfs until the file system refuses
// more (ENOSPC), and returns its size.
func (m *faultMesh) fill(i int) (int64, error) {
	if !m.nodes[i].tmpfs {
		return 0, fmt.Errorf("%s's data dir is not a tmpfs of its own", m.nodes[i].name)
	}
	f, err := os.OpenFile(m.fillerPath(i), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	for _, size := range []int{1 << 20, 4 << 10} {
		buf := make([]byte, size)
		for {
			n, err := f.Write(buf)
			total += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return total, err
			}
		}
	}
	m.note(i, "data dir filled: %d MiB filler, writes fail with ENOSPC", total>>20)
	return total, nil
}

// unfill deletes the filler.
func (m *faultMesh) unfill(i int) error {
	err := os.Remove(m.fillerPath(i))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		m.note(i, "filler deleted: the data dir has room again")
	}
	return err
}

// health is what GET /v1/health answered.
type faultHealth struct {
	code   int
	ok     bool
	index  uint64
	reason string // the body, when not 200
	// answered: the body was a health answer (it names its node), so index
	// is the replica's; not, for a refusal (an API error body, a limit).
	answered bool
}

// health asks node i's /v1/health (no token needed).
func (m *faultMesh) health(ctx context.Context, i int) (faultHealth, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.nodes[i].url+"/v1/health", nil)
	if err != nil {
		return faultHealth{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return faultHealth{}, fmt.Errorf("%s: GET /v1/health: %v", m.nodes[i].name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	h := faultHealth{code: resp.StatusCode}
	var v struct {
		Node   string `json:"node"`
		OK     bool   `json:"ok"`
		Index  uint64 `json:"index"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}
	json.Unmarshal(body, &v)
	h.ok, h.index, h.answered = v.OK, v.Index, v.Node != ""
	if resp.StatusCode != http.StatusOK {
		h.reason = strings.TrimSpace(string(body))
	}
	return h, nil
}

// ---- processes, from /proc ----

// procStat returns a process's state letter, parent and process group.
func procStat(pid int) (state byte, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], ppid, pgrp, true
}

func procState(pid int) byte {
	s, _, _, _ := procStat(pid)
	return s
}

func allPids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// childGroups returns the process groups of pid's children, except the
// test's own group (the node runs in it; its tasks each lead their own).
func childGroups(pid int) []int {
	own := syscall.Getpgrp()
	seen := map[int]bool{}
	var out []int
	for _, p := range allPids() {
		if _, ppid, pgrp, ok := procStat(p); ok && ppid == pid && pgrp != own && pgrp > 1 && !seen[pgrp] {
			seen[pgrp] = true
			out = append(out, pgrp)
		}
	}
	return out
}

// groupMembers lists the live (not zombie) processes in the given groups.
func groupMembers(pgids []int) []int {
	want := map[int]bool{}
	for _, g := range pgids {
		want[g] = true
	}
	var out []int
	for _, p := range allPids() {
		if st, _, pgrp, ok := procStat(p); ok && want[pgrp] && st != 'Z' && st != 'X' {
			out = append(out, p)
		}
	}
	return out
}
