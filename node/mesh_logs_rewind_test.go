package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
)

// copyHolder waits until a node other than runner holds a copy of task's
// attempt 1 holding want, and returns its index.
func copyHolder(t *testing.T, m *nodetest.Mesh, runner int, task, want string) int {
	t.Helper()
	holder := -1
	m.WaitFor(waitLong, fmt.Sprintf("a node other than node%d to hold a copy of %s with %q", runner, task, want), func() (bool, string) {
		for i, nd := range m.Nodes {
			if b, ok := nd.LogCopy(task, 1); i != runner && ok && bytes.Contains(b, []byte(want)) {
				holder = i
				return true, ""
			}
		}
		return false, "no copy holds it yet"
	})
	return holder
}

// rawLog reads the runner's own file of task's attempt 1 (while it runs).
func rawLog(t *testing.T, m *nodetest.Mesh, runner int, task string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.Nodes[runner].DataDir(), "logs", task, "1.log"))
	if err != nil {
		t.Fatalf("the runner's log file: %v", err)
	}
	return b
}

// caughtUp waits until node holder's copy of task holds at least the n
// first bytes of the runner's file, byte for byte.
func caughtUp(t *testing.T, m *nodetest.Mesh, runner, holder int, task string, n int, what string) {
	t.Helper()
	m.WaitFor(waitLong, what, func() (bool, string) {
		b, ok := m.Nodes[holder].LogCopy(task, 1)
		raw := rawLog(t, m, runner, task)
		switch {
		case !ok:
			return false, "no copy"
		case len(b) > len(raw) || !bytes.Equal(b, raw[:len(b)]):
			return false, fmt.Sprintf("the copy's %d bytes are not the start of the runner's %d", len(b), len(raw))
		}
		return len(b) >= n, fmt.Sprintf("the copy holds %d bytes, want %d or more", len(b), n)
	})
}

// wholeCopy follows node holder's copy of task until it is whole and
// checks it against the sealed log, read through node reader.
func wholeCopy(t *testing.T, m *nodetest.Mesh, holder, reader int, task string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	got, done := m.Nodes[holder].FollowLogCopy(ctx, task, 1)
	if !done {
		t.Fatalf("node%d's copy after the end: not whole (%d bytes)", holder, len(got))
	}
	waitSealed(t, m, task)
	rc, err := m.Client(reader).LogOf(testCtx(t), task, api.LogOptions{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sealed) {
		t.Errorf("node%d's whole copy: %d bytes, the sealed log %d; they differ", holder, len(got), len(sealed))
	}
	return got
}

// chunkPosts reads how many chunk requests node i answered, by answer.
func chunkPosts(t *testing.T, m *nodetest.Mesh, i int) (ok, gap, refused float64) {
	t.Helper()
	fams := scrapeMetrics(t, m.Nodes[i], m.Secret.ClusterToken())
	v := func(a string) float64 { return metricValue(fams, "ourci_task_log_chunk_posts_total", "answer", a) }
	return v("ok"), v("gap"), v("refused")
}

// TestLogCopyBackAfterItsHolderRestarts: the node holding the copy of a
// running attempt restarts (its copy, in memory, is lost) while the task
// prints on. The runner sends it the output again from its file, from
// the first byte, and streams on: the copy is whole again, and the
// restarted holder was asked a handful of times, not in a tight loop.
func TestLogCopyBackAfterItsHolderRestarts(t *testing.T) {
	const runner = 2 // not the first leader
	m := startMesh(t, 3, func(i int, c *node.Config) {
		if i == runner {
			c.Topics = topics("t")
		}
	})
	flag := filepath.Join(t.TempDir(), "end")
	// Over a MiB at once (it comes back in several requests), then a
	// line every 50 ms until the flag.
	script := fmt.Sprintf(`yes 'a long line of build output, printed many times over to fill the log with it' | head -n 20000
i=0; while [ ! -f %s ]; do i=$((i+1)); echo "tick $i"; sleep 0.05; done; echo end`, flag)
	r := spawn(t, m.Client(0), "t", "sh", "-c", script)
	holder := copyHolder(t, m, runner, r.Task, "tick 5\n")

	cfg := m.Config(holder)
	cfg.Peers = []string{m.Nodes[runner].GossipAddr()}
	if err := m.Nodes[holder].Close(); err != nil {
		t.Logf("close node%d: %v", holder, err)
	}
	restarted := time.Now()
	m.Restart(holder, cfg)
	before := len(rawLog(t, m, runner, r.Task))
	caughtUp(t, m, runner, holder, r.Task, before, fmt.Sprintf("restarted node%d's copy to hold the %d bytes the runner had at the restart", holder, before))
	// And it streams on: what the task printed since comes too.
	later := len(rawLog(t, m, runner, r.Task))
	caughtUp(t, m, runner, holder, r.Task, later+1, fmt.Sprintf("restarted node%d's copy to stream on past the runner's %d bytes", holder, later))
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	whole := wholeCopy(t, m, holder, runner, r.Task)
	elapsed := time.Since(restarted)
	if !bytes.Contains(whole, []byte("\nend\n")) {
		t.Errorf("the whole copy does not hold the task's last line: %.200q", whole[max(0, len(whole)-200):])
	}
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")

	// A chunk a second while caught up, a few requests to catch up, a 409
	// or two: a tight loop would be thousands.
	ok, gap, refused := chunkPosts(t, m, holder)
	t.Logf("restarted node%d answered %v ok, %v gap, %v refused in %s", holder, ok, gap, refused, elapsed.Round(time.Millisecond))
	if limit := 2*elapsed.Seconds() + 20; ok+gap+refused > limit || gap > 5 || refused > 0 || ok < 2 {
		t.Errorf("restarted node%d answered %v ok, %v gap, %v refused chunk requests in %s: want at most %.0f in all, 5 gaps, none refused, and the copy sent again in 2 or more",
			holder, ok, gap, refused, elapsed.Round(time.Millisecond), limit)
	}
}

// TestLogCopyCatchesUpAfterALag: the runner cannot reach its copy's
// holder while the task prints more than a shipper keeps in memory for a
// target (8 MiB). Once the link is back, the holder is caught up from the
// runner's file and streamed on to the end, not abandoned.
func TestLogCopyCatchesUpAfterALag(t *testing.T) {
	const runner = 2
	m := nodetest.StartFaulty(t, 3, func(i int, c *node.Config) {
		if i == runner {
			c.Topics = topics("t")
		}
	})
	m.WaitRaft(waitLong)
	dir := t.TempDir()
	big, end := filepath.Join(dir, "big"), filepath.Join(dir, "end")
	// 10.5 MiB between the flags.
	script := fmt.Sprintf(`echo start
while [ ! -f %[1]s ]; do sleep 0.05; done
yes 'a long line of build output, printed many times over to fill the log with it, 110 bytes or so, to make it big' | head -n 100000
echo big done
while [ ! -f %[2]s ]; do sleep 0.05; done
echo end`, big, end)
	r := spawn(t, m.Client(0), "t", "sh", "-c", script)
	holder := copyHolder(t, m, runner, r.Task, "start\n")
	from, to := m.Nodes[runner].Name(), m.Nodes[holder].Name()
	m.Faults.Block(from, to)
	t.Logf("cut %s → %s: %s", from, to, m.Faults)
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(waitLong, "the task to print its 10 MiB", func() (bool, string) {
		raw := rawLog(t, m, runner, r.Task)
		return bytes.Contains(raw, []byte("\nbig done\n")), fmt.Sprintf("%d bytes", len(raw))
	})
	size := len(rawLog(t, m, runner, r.Task))
	if size < 10<<20 {
		t.Fatalf("the runner's log holds %d bytes, want over 10 MiB", size)
	}
	// Seen while cut: the copy has not had it (the cut works).
	if b, _ := m.Nodes[holder].LogCopy(r.Task, 1); len(b) > 1<<20 {
		t.Fatalf("node%d's copy holds %d bytes while cut off: want the cut to hold it back", holder, len(b))
	}
	m.Heal()
	caughtUp(t, m, runner, holder, r.Task, size, fmt.Sprintf("node%d's copy to catch up on the %d bytes after the heal", holder, size))
	if err := os.WriteFile(end, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	whole := wholeCopy(t, m, holder, runner, r.Task)
	if !bytes.Contains(whole, []byte("\nend\n")) {
		t.Errorf("the whole copy does not hold the task's last line")
	}
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
}
