package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests need cgroup v2 and root. They skip, loudly, when cgroup v2
// cannot be used, and fail instead when OURCI_REQUIRE_CGROUPS=1.

// newCgroups opens a node cgroup of its own for the test and checks, when
// the test ends, that no attempt cgroup is left in it.
func newCgroups(t *testing.T) *Cgroups {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	c, err := OpenCgroups(fmt.Sprintf("test-%s-%d", name, time.Now().UnixNano()))
	if err != nil {
		if errors.Is(err, ErrNoCgroups) && os.Getenv("OURCI_REQUIRE_CGROUPS") != "1" {
			t.Skipf("SKIPPED, CGROUP CONTAINMENT NOT TESTED: %v (set OURCI_REQUIRE_CGROUPS=1 to make this a failure)", err)
		}
		t.Fatalf("OpenCgroups: %v", err)
	}
	t.Cleanup(func() {
		entries, err := os.ReadDir(c.Dir())
		if err != nil {
			t.Errorf("reading %s: %v", c.Dir(), err)
		}
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("attempt cgroup %s left behind", filepath.Join(c.Dir(), e.Name()))
			}
		}
		c.Sweep()
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Close, %s: got %v, want it gone", c.Dir(), err)
		}
	})
	return c
}

// escapes are the ways a task's process leaves its process group; each one
// starts a process that writes its pid to the file "pid" and sleeps.
var escapes = []struct{ name, prefix string }{
	{"setsid", "setsid "},
	// fork, setsid, fork again and let the middle one exit, as a daemon does
	{"daemon", `setsid sh -c '` + strings.ReplaceAll(recordPID(""), "'", `'\''`) + `' & `},
}

// TestHostCgroupKillsEscapees: with Cgroups, a process that left the task's
// process group (setsid, a daemon's double fork) dies when the
// attempt is stopped, its context cancelled, its leader exits or it is
// destroyed, and is gone when Wait returns. Without Cgroups each of them
// survives.
func TestHostCgroupKillsEscapees(t *testing.T) {
	t.Parallel()
	c := newCgroups(t)
	ends := []struct {
		name   string
		before string // what the leader does before it starts its escapee
		leader string // what the leader does after its escapee started
		end    func(p Process, cancel context.CancelFunc)
		code   int
	}{
		{"stop", "", "sleep 1000", func(p Process, _ context.CancelFunc) { p.Stop() }, ExitSIGTERM},
		{"cancel", "", "sleep 1000", func(_ Process, cancel context.CancelFunc) { cancel() }, ExitSIGTERM},
		{"leader exits", "", "exit 3", func(Process, context.CancelFunc) {}, 3},
		{"destroy", "", "sleep 1000", func(p Process, _ context.CancelFunc) { p.Destroy() }, ExitSIGKILL},
		{"stop ignoring TERM", "trap '' TERM\n", "while :; do sleep 0.05; done", func(p Process, _ context.CancelFunc) { p.Stop() }, ExitSIGKILL},
	}
	for _, esc := range escapes {
		for _, end := range ends {
			t.Run(esc.name+"/"+end.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				script := recordPID(esc.prefix)
				if esc.name == "daemon" {
					script = esc.prefix + "\nwhile [ ! -e pid ]; do sleep 0.01; done\n"
				}
				p, err := Host{Cgroups: c}.Start(ctx, Spec{
					Args:   []string{end.before + script + end.leader},
					Env:    []string{testPath},
					Dir:    dir,
					Grace:  200 * time.Millisecond,
					Labels: map[string]string{"ourci.task": "T1", "ourci.attempt": "1"},
				})
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				pid := readPID(t, filepath.Join(dir, "pid"))
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails
				if pgid, err := syscall.Getpgid(pid); err != nil || pgid == p.(*hostProcess).Pid() {
					t.Fatalf("escapee %d: process group %d (%v), want one other than the task's %d", pid, pgid, err, p.(*hostProcess).Pid())
				}
				end.end(p, cancel)
				if got := waitCode(t, p); got != end.code {
					t.Errorf("exit code: got %d, want %d", got, end.code)
				}
				if !gone(pid) {
					t.Errorf("escapee %d: got still running when Wait returned, want killed with its cgroup", pid)
				}
				if err := p.Destroy(); err != nil {
					t.Errorf("Destroy: got error %v, want nil", err)
				}
				if err := p.Destroy(); err != nil {
					t.Errorf("second Destroy: got error %v, want nil", err)
				}
			})
		}
	}
}

// TestHostCgroupFreezeFallback: without cgroup.kill (Linux before 5.14),
// freezing, SIGKILL to every listed process and thawing kills an escapee
// too, in nested cgroups as well.
func TestHostCgroupFreezeFallback(t *testing.T) {
	t.Parallel()
	c := newCgroups(t)
	c.hasKill = false
	dir := t.TempDir()
	p, err := Host{Cgroups: c}.Start(context.Background(), Spec{
		Args: []string{recordPID("setsid ") + "sleep 1000"},
		Env:  []string{testPath},
		Dir:  dir,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// A nested cgroup, as a root task could make, with the escapee in it.
	nested := filepath.Join(p.(*hostProcess).cg.dir, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nested, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if got := waitCode(t, p); got != ExitSIGTERM {
		t.Errorf("exit code: got %d, want %d", got, ExitSIGTERM)
	}
	if !gone(pid) {
		t.Errorf("escapee %d in a nested cgroup: got still running when Wait returned, want killed", pid)
	}
	if err := p.Destroy(); err != nil {
		t.Errorf("Destroy: got error %v, want nil", err)
	}
}

// TestCgroupsSweep: the attempt cgroups a crashed node left, with their
// processes (an escapee included), are killed and removed by Sweep.
func TestCgroupsSweep(t *testing.T) {
	t.Parallel()
	c := newCgroups(t)
	dir := t.TempDir()
	// A process started in an attempt cgroup and then abandoned, as by a
	// node killed -9: nothing will stop it but the sweep.
	g, err := c.create("T9.1")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := g.open()
	if err != nil {
		t.Fatal(err)
	}
	p, err := (Host{}).start(context.Background(), Spec{Args: []string{recordPID("setsid ") + "sleep 1000"}, Env: []string{testPath}, Dir: dir},
		"/bin/sh", []string{"/bin/sh", "-c", recordPID("setsid ") + "sleep 1000"}, []string{testPath},
		&syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: fd}, nil)
	syscall.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	leader := p.(*hostProcess).Pid()
	pid := readPID(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); p.Destroy() })
	empty, err := c.create("T9.2") // one without processes
	if err != nil {
		t.Fatal(err)
	}

	killed, err := c.Sweep()
	if err != nil {
		t.Errorf("Sweep: %v", err)
	}
	if killed != 1 {
		t.Errorf("Sweep: got %d cgroups with processes, want 1", killed)
	}
	if got := waitCode(t, p); got != ExitSIGKILL {
		t.Errorf("the abandoned leader's exit code: got %d, want %d", got, ExitSIGKILL)
	}
	for _, pid := range []int{leader, pid} {
		if !gone(pid) {
			t.Errorf("pid %d: got still running after Sweep, want killed", pid)
		}
	}
	for _, d := range []string{g.dir, empty.dir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s after Sweep: got %v, want removed", d, err)
		}
	}
}

func TestOpenCgroupsRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "a\x00b"} {
		if _, err := OpenCgroups(name); err == nil || errors.Is(err, ErrNoCgroups) {
			t.Errorf("OpenCgroups(%q): got %v, want a name error", name, err)
		}
	}
}

func TestCgroupName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"T12.3", "T12.3"},
		{"a/b c", "a_b_c"},
		{"..", "a.."},
		{"", "a"},
	} {
		if got := cgroupName(tt.in); got != tt.want {
			t.Errorf("cgroupName(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
