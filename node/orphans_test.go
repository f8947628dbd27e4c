package node

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/node/runner"
)

// TestKillOrphansCgroups: what a crashed life's host task left in its
// attempt cgroup, a setsid escapee included (out of reach of the process
// group kill), is killed by the next life's crash sweep, and the attempt
// cgroup is removed.
func TestKillOrphansCgroups(t *testing.T) {
	dataDir := t.TempDir()
	life := func() *Node {
		n := &Node{cfg: Config{Name: "n1", DataDir: dataDir}, log: slog.Default()}
		n.records = runner.NewRecords(n.runDir())
		if err := n.setupExecutors(); err != nil {
			t.Fatal(err)
		}
		if n.exec.cgErr != nil {
			if os.Getenv("OURCI_REQUIRE_CGROUPS") == "1" {
				t.Fatalf("OURCI_REQUIRE_CGROUPS=1 but: %v", n.exec.cgErr)
			}
			t.Skipf("SKIPPED, CRASH SWEEP OF CGROUPS NOT TESTED: %v", n.exec.cgErr)
		}
		t.Cleanup(n.closeExecutors)
		return n
	}
	first := life()
	// The previous life's attempt: born in its cgroup, as Host starts it.
	cg := filepath.Join(first.exec.host.Cgroups.Dir(), "t1.1")
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(cg, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	cmd := exec.Command("sh", "-c", `setsid sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 1000' & sleep 1000`)
	cmd.Dir = work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: fd}
	err = cmd.Start()
	syscall.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var escapee int
	wait.For(t, 10*time.Second, "the escapee's pid file", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(work, "pid"))
		if err != nil {
			return false, err.Error()
		}
		fmt.Sscan(string(b), &escapee)
		return escapee != 0, fmt.Sprintf("it holds %q", b)
	})
	t.Cleanup(func() { syscall.Kill(escapee, syscall.SIGKILL); syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if _, err := first.records.Mark("t1", 1); err != nil {
		t.Fatal(err)
	}
	first.records.Group("t1", 1, cmd.Process.Pid)

	// The node died (-9); its next life sweeps.
	second := life()
	killed, started := second.killOrphans()
	if killed < 2 {
		t.Errorf("killOrphans: got %d killed, want the process group and the attempt cgroup", killed)
	}
	if want := map[string]int{"t1": 1}; !maps.Equal(started, want) {
		t.Errorf("started attempts: got %v, want %v", started, want)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned task's leader is still running")
	}
	wait.For(t, 10*time.Second, fmt.Sprintf("the crash sweep to kill escapee %d (setsid)", escapee), func() (bool, string) {
		return processGone(escapee), "it still runs"
	})
	if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("attempt cgroup %s after the sweep: got %v, want removed", cg, err)
	}
}

// processGone reports whether pid has exited (a zombie counts: init reaps it).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}
