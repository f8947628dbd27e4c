package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// smallDisk mounts a tmpfs of size bytes at a new directory (root only;
// OURCI_REQUIRE_FAULTS=1 turns the skip into a failure).
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("OURCI_REQUIRE_FAULTS") != "" {
			t.Fatalf("mount a tmpfs for the full-disk test: %v (OURCI_REQUIRE_FAULTS is set)", err)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a new file into dir until the disk holds only leave bytes
// more, and returns its path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	f, err := os.CreateTemp(dir, "filler")
	if err != nil {
		t.Fatal(err)
	}
	p := f.Name()
	defer f.Close()
	chunk := bytes.Repeat([]byte{'f'}, 1<<20)
	for left := free - leave; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	return p
}

// A node whose disk fills up: the task whose output no longer fits ends as
// an infrastructure failure there and passes on another node (never passed
// with a cut log); the full node marks itself unhealthy (gossip, status,
// /v1/health 503) and gets no work; a blob put to it answers 507 "no space
// on NODE"; freed space makes it healthy again and it takes work.
func TestFullDiskFailsTaskMarksNodeUnhealthy(t *testing.T) {
	disk := smallDisk(t, 48<<20)
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Topics = []node.Topic{{Name: "build"}}
		if i == 2 {
			c.Topics = nil // a voter that runs nothing
		}
		if i == 0 {
			c.DataDir = filepath.Join(disk, "node0")
		}
		c.MinFreeDisk = 1 << 20
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	filler := fill(t, disk, 6<<20)

	// 16 MiB of output: it cannot fit on node0's disk. node0 and node1
	// serve build; node0 wins the tie (by name) and gets the first attempt.
	res, err := m.Client(1).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"head -c 16777216 /dev/zero | tr '\\0' o; echo; echo done"}})
	if err != nil {
		t.Fatal(err)
	}
	d := m.WaitJob(1, res.Job, time.Minute)
	tk := d.Tasks[0]
	if d.Job.Status != raftfsm.StatusPassed || tk.Node != "node1" || tk.Attempt != 2 || tk.InfraRetries != 1 {
		t.Fatalf("the task: got job %s, task %s attempt %d (infra retries %d) on %s error %q; want it passed on node1 as attempt 2 after an infra retry",
			d.Job.Status, tk.State, tk.Attempt, tk.InfraRetries, tk.Node, tk.InfraError)
	}
	if !strings.Contains(tk.InfraError, "node0") || !strings.Contains(tk.InfraError, "no space left on device") {
		t.Errorf("the task's infra error: got %q, want the failure on node0 with its cause", tk.InfraError)
	}

	// The attempt's log, the bulk of what filled the disk, may be sealed
	// (a few KiB of zstd) and its raw copy gone by now, which frees the
	// disk: fill it again, below --min-free-disk.
	topUp := fill(t, disk, 512<<10)
	// node0 is unhealthy, everywhere it is looked at.
	m.WaitFor(20*time.Second, "node0 seen unhealthy by the others", func() (bool, string) {
		for _, mb := range m.Nodes[2].Status().Members {
			if mb.Name == "node0" {
				return mb.Unhealthy != "", fmt.Sprintf("node0 unhealthy %q", mb.Unhealthy)
			}
		}
		return false, "node0 not listed"
	})
	resp, err := http.Get(m.Nodes[0].URL() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "disk") {
		t.Errorf("/v1/health of node0: got %d %s, want 503 naming the disk", resp.StatusCode, body)
	}
	_, err = m.Client(0).PutBlob(ctx, bytes.NewReader(bytes.Repeat([]byte("x"), 8<<20)), nil)
	var se *api.StatusError
	if !errors.As(err, &se) || se.HTTPStatus != http.StatusInsufficientStorage || !strings.Contains(err.Error(), "no space on node0") {
		t.Errorf("blob put to node0: got %v, want 507 saying no space on node0", err)
	}
	// No work goes to node0 while it is unhealthy.
	for k := 0; k < 4; k++ {
		// With a key: leadership may move off the full node, and the
		// client retries across that.
		r, err := m.Client(2).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"true"}, Key: key()})
		if err != nil {
			t.Fatal(err)
		}
		if d := m.WaitJob(2, r.Job, 30*time.Second); d.Tasks[0].Node != "node1" || d.Job.Status != raftfsm.StatusPassed {
			t.Errorf("a task spawned while node0 is unhealthy: got %s on %s, want passed on node1", d.Job.Status, d.Tasks[0].Node)
		}
	}

	// Space freed: healthy again, and it takes work.
	for _, p := range []string{filler, topUp} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	m.WaitFor(20*time.Second, "node0 healthy again", func() (bool, string) {
		u := m.Nodes[0].Unhealthy()
		return u == "", u
	})
	m.WaitFor(30*time.Second, "node0 to run a task again", func() (bool, string) {
		r, err := m.Client(2).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"sleep 0.2"}})
		if err != nil {
			return false, err.Error()
		}
		r2, err := m.Client(2).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"sleep 0.2"}})
		if err != nil {
			return false, err.Error()
		}
		a, b := m.WaitJob(2, r.Job, 30*time.Second), m.WaitJob(2, r2.Job, 30*time.Second)
		return a.Tasks[0].Node == "node0" || b.Tasks[0].Node == "node0", "both ran on " + a.Tasks[0].Node + ", " + b.Tasks[0].Node
	})
}
