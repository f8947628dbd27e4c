//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package checkout

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Another process holding <key>.lock (here: this test, through its own open
// file description) keeps Checkout from creating the mirror until it lets go,
// and the wait ends with the context.
func TestFlockAcrossProcesses(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, Key(u.bare)+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	m := &Mirrors{Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = m.Checkout(ctx, u.bare, main, "", filepath.Join(t.TempDir(), "ws"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("checkout while another process holds the lock: %v, want a deadline error", err)
	}
	if m.RemoteCalls() != 0 {
		t.Fatal("checkout contacted the remote without the lock")
	}

	done := make(chan error, 1)
	go func() {
		done <- m.Checkout(context.Background(), u.bare, main, "", filepath.Join(t.TempDir(), "ws"))
	}()
	select {
	case err := <-done:
		t.Fatalf("checkout finished while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("checkout did not proceed after the lock was released")
	}
}
