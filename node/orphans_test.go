package node

import (
	"log/slog"
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
	n.recordGroup("t1", 1, cmd.Process.Pid) // left behind, as by a node killed -9
	// A record naming init is never acted on.
	n.recordGroup("t2", 1, 1)
	if got := n.killOrphans(); got != 1 {
		t.Fatalf("killed groups: got %d, want 1", got)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned task is still running")
	}
	if got := n.killOrphans(); got != 0 {
		t.Errorf("second pass: got %d, want 0 (records are consumed)", got)
	}
}
