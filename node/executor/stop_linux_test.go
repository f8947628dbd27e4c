package executor

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

func TestHostStopKillsWholeGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, context.Background(), Spec{
		Args: []string{recordPID("") + "sleep 1000; wait"},
		Env:  []string{testPath},
		Dir:  dir,
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	if gone(pid) {
		t.Fatalf("grandchild %d: got gone before Stop, want running", pid)
	}
	p.Stop()
	if got := waitCode(t, p); got != ExitSIGTERM {
		t.Errorf("exit code: got %d, want %d", got, ExitSIGTERM)
	}
	waitGone(t, pid)
}

func TestHostStopEscalatesAfterGrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const grace = 200 * time.Millisecond
	// SIG_IGN is inherited, so the grandchild ignores SIGTERM as well.
	p := start(t, context.Background(), Spec{
		Args:  []string{"trap '' TERM\n" + recordPID("") + "while :; do sleep 0.05; done"},
		Env:   []string{testPath},
		Dir:   dir,
		Grace: grace,
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	began := time.Now()
	p.Stop()
	if got := waitCode(t, p); got != ExitSIGKILL {
		t.Errorf("exit code: got %d, want %d", got, ExitSIGKILL)
	}
	if took := time.Since(began); took < grace {
		t.Errorf("Stop to exit: got %v, want at least the grace %v", took, grace)
	}
	waitGone(t, pid)
}

func TestHostStopLetsTaskCleanUp(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	p := start(t, context.Background(), Spec{
		Args:   []string{"trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.05; done"},
		Env:    []string{testPath},
		Output: &out,
		Grace:  deadline, // never reached: the trap exits first
	})
	wait.For(t, deadline, "the trap to be set", func() (bool, string) { return out.String() == "ready\n", fmt.Sprintf("output %q", out.String()) })
	p.Stop()
	if got := waitCode(t, p); got != 7 {
		t.Errorf("exit code: got %d, want 7", got)
	}
	// sh may also report its sleep as "Terminated" in between.
	if got := out.String(); !strings.HasPrefix(got, "ready\n") || !strings.HasSuffix(got, "bye\n") {
		t.Errorf("output: got %q, want %q, then the trap's %q", got, "ready\n", "bye\n")
	}
}

func TestHostLeftoverHoldingOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out syncBuffer
	p := start(t, context.Background(), Spec{
		Args:   []string{recordPID("") + "echo leader done"},
		Env:    []string{testPath},
		Dir:    dir,
		Output: &out,
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	began := time.Now()
	if got := waitCode(t, p); got != 0 {
		t.Errorf("exit code: got %d, want 0", got)
	}
	// Killing the group closes the pipe: Wait must not need outputDelay.
	if took := time.Since(began); took >= outputDelay {
		t.Errorf("Wait took %v, want less than %v", took, outputDelay)
	}
	if got, want := out.String(), "leader done\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
	waitGone(t, pid)
}

func TestHostEscapedHolderDoesNotHangWait(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	var out syncBuffer
	p := start(t, context.Background(), Spec{
		Args:   []string{recordPID("setsid ") + "echo leader done"},
		Env:    []string{testPath},
		Dir:    dir,
		Output: &out,
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // it left the group: ours to kill
	if got := waitCode(t, p); got != 0 {
		t.Errorf("exit code: got %d, want 0", got)
	}
	if got, want := out.String(), "leader done\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
}

func TestHostRepeatedAndConcurrentCalls(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		end  func(Process)
		code int
	}{
		{"stop", func(p Process) { p.Stop(); p.Stop() }, ExitSIGTERM},
		{"destroy", func(p Process) { p.Destroy(); p.Destroy() }, ExitSIGKILL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			p := start(t, context.Background(), Spec{Args: []string{"echo ready; sleep 1000"}, Env: []string{testPath}, Output: &out})
			wait.For(t, deadline, "the task to start", func() (bool, string) {
				return strings.HasPrefix(out.String(), "ready"), fmt.Sprintf("output %q", out.String())
			})
			codes := make(chan int, 2)
			for range 2 {
				go func() {
					code, _ := p.Wait()
					codes <- code
				}()
			}
			tt.end(p)
			for i := range 2 {
				select {
				case got := <-codes:
					if got != tt.code {
						t.Errorf("Wait %d: got %d, want %d", i, got, tt.code)
					}
				case <-time.After(deadline):
					t.Fatalf("Wait %d: still blocked after %v", i, deadline)
				}
			}
			// Everything is still safe, and changes nothing, after the exit.
			p.Stop()
			for i := range 2 {
				if err := p.Destroy(); err != nil {
					t.Errorf("Destroy %d after exit: got error %v, want nil", i, err)
				}
			}
			if got := waitCode(t, p); got != tt.code {
				t.Errorf("Wait after exit: got %d, want %d", got, tt.code)
			}
		})
	}
}
