package runner

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRecordsKillOrphans(t *testing.T) {
	r := NewRecords(t.TempDir())
	cmd := exec.Command("sh", "-c", "sleep 1000 & sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if _, err := r.Mark("t1", 1); err != nil { // left behind, as by a node killed -9
		t.Fatal(err)
	}
	r.Group("t1", 1, cmd.Process.Pid)
	// A record naming init is never acted on; one that never got a
	// process (the node died while starting it) still counts as started.
	r.Mark("t2", 2)
	r.Group("t2", 2, 1)
	r.Mark("t3", 1)
	got, started := r.KillOrphans(slog.Default())
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
	if got, _ := r.KillOrphans(slog.Default()); got != 0 {
		t.Errorf("second pass: got %d, want 0 (records are consumed)", got)
	}
}

// TestRunRecordsRecycled: a forgotten run record is kept as an empty spare
// and renamed into place for the next attempt; KillOrphans counts only
// records, never spares, and clears both.
func TestRunRecordsRecycled(t *testing.T) {
	dir := t.TempDir()
	r := NewRecords(dir)
	files := func() map[string]string {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
		return out
	}
	st, err := startTime(1)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	grouped := fmt.Sprintf("1 %d\n", st)

	forget1, err := r.Mark("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Group("t1", 1, 1)
	steps := []struct {
		name string
		do   func()
		want map[string]string
	}{
		{"started, group recorded in place", func() {}, map[string]string{"t1.1.pid": grouped}},
		{"forgotten: an empty spare", forget1, map[string]string{"spare-1": ""}},
		{"next attempt takes the spare", func() {
			if _, err := r.Mark("t2", 3); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"t2.3.pid": "0 0\n"}},
		{"its group recorded", func() { r.Group("t2", 3, 1) }, map[string]string{"t2.3.pid": grouped}},
		{"a third attempt, ended", func() {
			forget, err := r.Mark("t3", 1)
			if err != nil {
				t.Fatal(err)
			}
			forget()
		}, map[string]string{"t2.3.pid": grouped, "spare-2": ""}},
	}
	for _, s := range steps {
		s.do()
		if got := files(); !maps.Equal(got, s.want) {
			t.Fatalf("%s: run dir holds %q, want %q", s.name, got, s.want)
		}
	}
	killed, started := r.KillOrphans(slog.Default())
	if want := map[string]int{"t2": 3}; killed != 0 || !maps.Equal(started, want) {
		t.Errorf("KillOrphans: got %d killed, started %v; want 0 killed, started %v", killed, started, want)
	}
	if got := files(); len(got) != 0 {
		t.Errorf("after KillOrphans the run dir holds %q, want nothing", got)
	}
}
