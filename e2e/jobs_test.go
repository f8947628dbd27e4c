package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

const shellTopic = "e2e/shell"

// TestFailFastAndSiblingStillRuns: a failed task turns the job failed at once,
// while its running sibling goes on and still reports into the open job.
func TestFailFastAndSiblingStillRuns(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{shellTopic}, Slots: 4},
		{Name: "node2", Topics: []string{shellTopic}, Slots: 4},
	})
	childA := "exit 3"
	childB := `while [ ! -e "$GATE" ]; do sleep 0.1; done; echo B saw the gate`
	rootCmd := fmt.Sprintf("ourci-node spawn -t %s -- %s && ourci-node spawn -t %s --env GATE=%s -- %s",
		shellTopic, shq(childA), shellTopic, shq(gate), shq(childB))
	job, root := m.spawn(t, 1, "-t", shellTopic, "--", rootCmd)

	isA := func(tv taskView) bool { return len(tv.Args) == 1 && tv.Args[0] == childA }
	isB := func(tv taskView) bool { return len(tv.Args) == 1 && tv.Args[0] == childB }
	m.waitJob(t, 0, job, time.Minute, "status failed, state open, B running", func(v jobView) bool {
		b, ok := v.task(isB)
		return ok && b.State == "running" && v.Job.Status == "failed" && v.Job.State == "open"
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := m.waitClosed(t, 0, job, time.Minute)
	a, okA := v.task(isA)
	b, okB := v.task(isB)
	r, okR := v.task(func(tv taskView) bool { return tv.ID == root })
	switch {
	case !okA || !okB || !okR || len(v.Tasks) != 3:
		t.Fatalf("want the root and exactly one A and one B task: %v", v)
	case v.Job.State != "closed" || v.Job.Status != "failed":
		t.Errorf("job state %q status %q, want closed and failed: %v", v.Job.State, v.Job.Status, v)
	}
	for _, c := range []struct {
		tv    taskView
		state string
		exit  int
	}{{r, "passed", 0}, {a, "failed", 3}, {b, "passed", 0}} {
		if c.tv.State != c.state || c.tv.ExitCode == nil || *c.tv.ExitCode != c.exit {
			t.Errorf("task %v: want state %s exit_code %d", c.tv, c.state, c.exit)
		}
		if c.tv.ID != root && c.tv.Parent != root {
			t.Errorf("task %v: want parent %s", c.tv, root)
		}
	}

	// spawn --wait follows the whole job, children included.
	for _, c := range []struct {
		child string
		code  int
	}{{"exit 1", 1}, {"true", 0}} {
		cmd := fmt.Sprintf("ourci-node spawn -t %s -- %s", shellTopic, shq(c.child))
		r := m.runTimeout(t, 1, 2*time.Minute, "spawn", "--wait", "-t", shellTopic, "--", cmd)
		if r.code != c.code {
			t.Errorf("spawn --wait of a job whose child runs %q: %v, want exit %d", c.child, r, c.code)
		}
	}
}

// TestCancelKillsProcessTree: cancelling a job kills its running task's whole
// process tree, and the job closes with status error.
func TestCancelKillsProcessTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMesh(t, []nodeSpec{{Name: "node1", Topics: []string{shellTopic}, Slots: 2}})
	cmd := `echo $$ >"$PIDS/sh"; sleep 1000 & echo $! >"$PIDS/bg"; sleep 1000 & echo $! >"$PIDS/fg"; wait`
	job, task := m.spawn(t, 0, "-t", shellTopic, "--env", "PIDS="+dir, "--", cmd)

	var pids []int
	t.Cleanup(func() { // do not leave sleeps behind when the test fails early
		for _, pid := range pids {
			if !gone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	wait.For(t, time.Minute, "the task's pid files", func() (bool, string) {
		pids = pids[:0]
		for _, name := range []string{"sh", "bg", "fg"} {
			data, _ := os.ReadFile(filepath.Join(dir, name))
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				return false, fmt.Sprintf("the task has not written its pid file %s yet", name)
			}
			pids = append(pids, pid)
		}
		return true, ""
	})
	m.waitJob(t, 0, job, 30*time.Second, "the task to be running", func(v jobView) bool {
		tv, ok := v.task(func(tv taskView) bool { return tv.ID == task })
		return ok && tv.State == "running"
	})

	if r := m.run(t, "cancel", job); r.code != 0 {
		t.Fatalf("cancel %s: %v", job, r)
	}
	v := m.waitClosed(t, 0, job, 30*time.Second)
	tv, ok := v.task(func(tv taskView) bool { return tv.ID == task })
	if v.Job.Status != "error" || !ok || tv.State != "cancelled" {
		t.Errorf("after cancel: want job status error and task cancelled, got %v", v)
	}
	wait.For(t, 15*time.Second, "the cancelled task's processes to be gone", func() (bool, string) {
		for _, pid := range pids {
			if !gone(pid) {
				return false, fmt.Sprintf("process %d of the cancelled task (pids sh, bg, fg: %v) is still alive", pid, pids)
			}
		}
		return true, ""
	})
}

// gone reports whether pid no longer runs: it does not exist or is a zombie.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the ")" that ends the command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
