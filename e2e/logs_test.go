package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// TestLogsOutliveTheirNode, on real processes: a finished task's log is
// read whole from each other node after its node was killed for good, and
// a task killed together with its node mid-run still shows its output up
// to the last chunk from the other nodes, and then for good, sealed by
// the node that held its copy.
func TestLogsOutliveTheirNode(t *testing.T) {
	t.Parallel()
	const topic = "e2e/logs"
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{topic}},
		{Name: "node2"},
		{Name: "node3"},
	})
	// A finished task: 3000 lines, the last one unended.
	job, done := m.spawn(t, 1, "-t", topic, "--", `i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "build line $i"; done; printf 'the end'`)
	if v := m.waitClosed(t, 1, job, time.Minute); v.Job.Status != "passed" {
		t.Fatalf("job: %v", v)
	}
	// A task that prints, then hangs: the node dies with it.
	_, hung := m.spawn(t, 1, "-t", topic, "--", `i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo "step $i"; done; exec sleep 600`)

	wantDone := m.runOn(t, 0, "logs", done)
	if wantDone.code != 0 || !strings.Contains(wantDone.stdout, "build line 3000\nthe end") {
		t.Fatalf("logs of the finished task on its node: %v", wantDone)
	}
	wait.For(t, time.Minute, "the sealed log on two nodes and the hung task's output copied to another", func() (bool, string) {
		var held []string
		var copies float64
		for i := range m.nodes {
			sealed, _ := metricValue(t, m, i, "ourci_task_log_sealed_bytes")
			if sealed > 0 {
				held = append(held, m.nodes[i].spec.Name)
			}
			if i > 0 {
				c, _ := metricValue(t, m, i, "ourci_task_log_copy_bytes")
				copies += c
			}
		}
		step500 := float64(len("step 1\n")*9 + len("step 10\n")*90 + len("step 100\n")*401)
		return len(held) >= 2 && copies >= step500, fmt.Sprintf("sealed logs on %v, %g bytes of copies (want %g)", held, copies, step500)
	})

	n1 := m.nodes[0]
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("node1 did not exit after SIGKILL")
	}
	for _, i := range []int{1, 2} {
		if r := m.runOn(t, i, "logs", done); r.code != 0 || r.stdout != wantDone.stdout {
			t.Errorf("logs of the finished task through %s after node1 died: got %d bytes (%v), want the %d node1 served", m.nodes[i].spec.Name, len(r.stdout), r.code, len(wantDone.stdout))
		}
		if r := m.runOn(t, i, "logs", "--tail", "2", done); r.stdout != lastLines(wantDone.stdout, 2) {
			t.Errorf("logs --tail 2 through %s: got %q", m.nodes[i].spec.Name, r.stdout)
		}
		var last result
		wait.For(t, time.Minute, "the hung task's output through "+m.nodes[i].spec.Name, func() (bool, string) {
			last = m.runOn(t, i, "logs", "--attempt", "1", hung)
			return last.code == 0 && strings.Contains(last.stdout, "step 1\n") && strings.Contains(last.stdout, "step 500\n"), last.String()
		})
	}
	// The copy's holder seals it once the ledger gave the attempt away.
	for _, i := range []int{1, 2} {
		wait.For(t, time.Minute, "the hung task's sealed log through "+m.nodes[i].spec.Name, func() (bool, string) {
			r := m.runOn(t, i, "logs", "--attempt", "1", hung)
			return strings.Contains(r.stdout, "step 500\n") && strings.Contains(r.stdout, "the log ends here: its node node1 stopped streaming it"), r.String()
		})
	}
}

// lastLines is the last n lines of s, which ends in a newline.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "") + "\n"
}

// TestLogsSurviveARestartOfEveryNode, on real processes: after every node
// stopped and started again on its data directory, every log in retention
// reads the same through every node.
func TestLogsSurviveARestartOfEveryNode(t *testing.T) {
	t.Parallel()
	const topic = "e2e/logs-restart"
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{topic}},
		{Name: "node2", Topics: []string{topic}},
		{Name: "node3"},
	})
	var tasks []string
	for k := range 4 {
		job, task := m.spawn(t, k%3, "-t", topic, "--", fmt.Sprintf(`i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo "task %d line $i"; done`, k))
		if v := m.waitClosed(t, 0, job, time.Minute); v.Job.Status != "passed" {
			t.Fatalf("job: %v", v)
		}
		tasks = append(tasks, task)
	}
	wait.For(t, time.Minute, "the sealed logs on two nodes", func() (bool, string) {
		var held []string
		for i := range m.nodes {
			if v, _ := metricValue(t, m, i, "ourci_task_log_sealed_bytes"); v > 0 {
				held = append(held, m.nodes[i].spec.Name)
			}
		}
		return len(held) >= 2, fmt.Sprintf("sealed logs on %v", held)
	})
	want := map[string]string{}
	for k, task := range tasks {
		r := m.runOn(t, 2, "logs", task)
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("task %d line 200\n", k)) {
			t.Fatalf("logs %s before the restart: %v", task, r)
		}
		want[task] = r.stdout
	}

	m.stop(t)
	for i := range m.nodes {
		m.startNode(t, i)
	}
	wait.For(t, 2*time.Minute, "the mesh back after a restart of every node", m.ready(t))
	for i := range m.nodes {
		for _, task := range tasks {
			var last result
			wait.For(t, time.Minute, fmt.Sprintf("task %s's log through %s after the restart", task, m.nodes[i].spec.Name), func() (bool, string) {
				last = m.runOn(t, i, "logs", task)
				return last.code == 0 && last.stdout == want[task], fmt.Sprintf("exit %d, %d bytes (want %d): %.200s", last.code, len(last.stdout), len(want[task]), last.stderr)
			})
		}
	}
}
