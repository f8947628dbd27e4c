package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// deadline bounds every wait in these tests.
const deadline = 10 * time.Second

// testPath is the PATH given to tasks (the test's own PATH is not passed on).
const testPath = "PATH=/usr/local/bin:/usr/bin:/bin"

// syncBuffer is an io.Writer that tests can read while a task writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start starts s on the Host and destroys the process when the test ends.
func start(t *testing.T, ctx context.Context, s Spec) Process {
	t.Helper()
	p, err := Host{}.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		errc := make(chan error, 1)
		go func() { errc <- p.Destroy() }()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Destroy: got error %v, want nil", err)
			}
		case <-time.After(deadline):
			t.Errorf("Destroy: still blocked after %v", deadline)
		}
	})
	return p
}

// waitCode waits (with the test deadline) for p and returns its exit code.
func waitCode(t *testing.T, p Process) int {
	t.Helper()
	return waitCodeWithin(t, p, deadline)
}

// waitCodeWithin waits up to max for p and returns its exit code.
func waitCodeWithin(t *testing.T, p Process, max time.Duration) int {
	t.Helper()
	type result struct {
		code int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		ch <- result{code, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Wait: got error %v, want nil", r.err)
		}
		return r.code
	case <-time.After(max):
		t.Fatalf("Wait: still blocked after %v", max)
		return 0
	}
}

// readPID waits for the task to write a pid into path and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	wait.For(t, deadline, "pid file "+path, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, fmt.Sprintf("it holds %q", b)
	})
	return pid
}

// gone reports whether pid has exited. A zombie counts as gone: once
// reparented, it is reaped by init or a subreaper, which may take its time.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state is the first field after the ")" that ends the command name.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	wait.For(t, deadline, fmt.Sprintf("pid %d to exit", pid), func() (bool, string) { return gone(pid), "it still runs" })
}

// writeScript writes body to dir/name with mode and returns its path.
func writeScript(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
	return path
}

// recordPID is a shell fragment that starts a background grandchild which
// writes its pid to the file "pid" (atomically) and sleeps; the task waits
// until the file exists. prefix may be e.g. "setsid ".
func recordPID(prefix string) string {
	return prefix + `sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 1000' &
while [ ! -e pid ]; do sleep 0.01; done
`
}
