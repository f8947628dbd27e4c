package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// taskMarker is the line a task running markerTask prints: its output
// alone holds it (the spawn's arguments, which the ledger and the Raft log
// keep, do not: the task works it out from its ID).
func taskMarker(task string) string {
	h := sha256.Sum256([]byte(task))
	return hex.EncodeToString(h[:])
}

// markerTask prints the task's marker n times, numbered.
func markerTask(n int) string {
	return fmt.Sprintf(`m=$(printf %%s "$OURCI_TASK" | sha256sum | cut -d' ' -f1); i=0; while [ $i -lt %d ]; do i=$((i+1)); echo "$m line $i"; done`, n)
}

// dataDir is node i's data directory.
func (m *mesh) dataDir(i int) string { return filepath.Join(m.dir, m.nodes[i].spec.Name+".data") }

// sealedBlobs lists the blob files in node i's data directory.
func (m *mesh) sealedBlobs(t *testing.T, i int) []string {
	t.Helper()
	var out []string
	root := filepath.Join(m.dataDir(i), "blobs", "sha256")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && len(d.Name()) == 64 {
			out = append(out, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// leftIn returns the files under dir named name and those whose bytes
// hold any of needles.
func leftIn(t *testing.T, dir, name string, needles ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if d.Name() == name {
			out = append(out, p)
		}
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			return err
		}
		for _, s := range needles {
			if bytes.Contains(b, []byte(s)) {
				out = append(out, fmt.Sprintf("%s (holds %.16s...)", p, s))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// TestExpiredLogsLeaveEveryDisk, on real processes: once a closed job's
// --log-retention passed, nothing of its task's log is on any node's disk
// (no raw log, no copy of its sealed blob, not its output in any file),
// while the log of a newer job is read from every node.
func TestExpiredLogsLeaveEveryDisk(t *testing.T) {
	t.Parallel()
	const topic = "e2e/logs-expiry"
	const retention = 15 * time.Second
	flags := []string{"--log-retention", retention.String()}
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{topic}, Flags: flags},
		{Name: "node2", Topics: []string{topic}, Flags: flags},
		{Name: "node3", Flags: flags},
	})
	job, task := m.spawn(t, 2, "-t", topic, "--", markerTask(300))
	if v := m.waitClosed(t, 2, job, time.Minute); v.Job.Status != "passed" {
		t.Fatalf("job: %v", v)
	}
	mark := taskMarker(task)
	for i := range m.nodes {
		if r := m.runOn(t, i, "logs", task); r.code != 0 || !strings.Contains(r.stdout, mark+" line 300\n") {
			t.Fatalf("logs %s through %s: %v", task, m.nodes[i].spec.Name, r)
		}
	}
	// Sealed and replicated: the only blob of the mesh, on two disks, and
	// the raw log gone from the node that ran it.
	var hash string
	wait.For(t, time.Minute, "the task's sealed log on two disks and its raw log gone", func() (bool, string) {
		var on []string
		names := map[string]bool{}
		for i := range m.nodes {
			for _, h := range m.sealedBlobs(t, i) {
				names[h] = true
				on = append(on, m.nodes[i].spec.Name)
			}
		}
		var raw []string
		for i := range m.nodes {
			raw = append(raw, leftIn(t, filepath.Join(m.dataDir(i), "logs"), "", mark)...)
		}
		if len(names) != 1 || len(on) < 2 || len(raw) > 0 {
			return false, fmt.Sprintf("blobs %v on %v; raw logs %v", names, on, raw)
		}
		for h := range names {
			hash = h
		}
		return true, ""
	})
	t.Logf("sealed log %s; its job closed, its logs expire %s later", hash, retention)

	var left []string
	wait.For(t, retention+time.Minute, "nothing of the expired job's log on any disk", func() (bool, string) {
		left = nil
		for i := range m.nodes {
			left = append(left, leftIn(t, m.dataDir(i), hash, mark)...)
		}
		return len(left) == 0, fmt.Sprintf("left: %v", left)
	})
	if r := m.runOn(t, 0, "logs", task); strings.Contains(r.stdout, mark) {
		t.Errorf("logs %s after its retention: got its output (%v)", task, r)
	}

	// A newer job's log is sealed, kept and read from every node, and
	// still nothing of the old one is back.
	job2, task2 := m.spawn(t, 0, "-t", topic, "--", markerTask(300))
	if v := m.waitClosed(t, 0, job2, time.Minute); v.Job.Status != "passed" {
		t.Fatalf("job: %v", v)
	}
	mark2 := taskMarker(task2)
	wait.For(t, time.Minute, "the newer job's sealed log on two disks", func() (bool, string) {
		var on []string
		for i := range m.nodes {
			if blobs := m.sealedBlobs(t, i); len(blobs) > 0 && !slices.Contains(blobs, hash) {
				on = append(on, m.nodes[i].spec.Name)
			}
		}
		return len(on) >= 2, fmt.Sprintf("on %v", on)
	})
	for i := range m.nodes {
		if r := m.runOn(t, i, "logs", task2); r.code != 0 || !strings.Contains(r.stdout, mark2+" line 300\n") {
			t.Errorf("logs of the newer job through %s: %v", m.nodes[i].spec.Name, r)
		}
		if got := leftIn(t, m.dataDir(i), hash, mark); len(got) > 0 {
			t.Errorf("the expired job's log on %s again: %v", m.nodes[i].spec.Name, got)
		}
	}
}
