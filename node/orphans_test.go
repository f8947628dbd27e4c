package node

import (
	"log/slog"
	"maps"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestKillOrphans(t *testing.T) {
	n := &Node{cfg: Config{DataDir: t.TempDir()}, log: slog.Default()}
	cmd := exec.Command("sh", "-c", "sleep 1000 & sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if _, err := n.markStarting("t1", 1); err != nil { // left behind, as by a node killed -9
		t.Fatal(err)
	}
	n.recordGroup("t1", 1, cmd.Process.Pid)
	// A record naming init is never acted on; one that never got a
	// process (the node died while starting it) still counts as started.
	n.markStarting("t2", 2)
	n.recordGroup("t2", 2, 1)
	n.markStarting("t3", 1)
	got, started := n.killOrphans()
	if got != 1 {
		t.Fatalf("killed groups: got %d, want 1", got)
	}
	if want := map[string]int{"t1": 1, "t2": 2, "t3": 1}; !maps.Equal(started, want) {
		t.Errorf("started attempts: got %v, want %v", started, want)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned task is still running")
	}
	if got, _ := n.killOrphans(); got != 0 {
		t.Errorf("second pass: got %d, want 0 (records are consumed)", got)
	}
}
