//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package checkout

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// setProcessGroup starts git in a new session: it has no controlling
// terminal (so ssh cannot prompt on /dev/tty) and is the leader of its own
// process group, which is killed as a whole when the context ends (git's
// helpers — ssh, index-pack, upload-pack — die with it).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error {
		// The leader is not reaped yet when Cancel runs, so its group id
		// still belongs to it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// flock takes an exclusive flock on path (created if needed), polling so that
// the wait ends with ctx.
func flock(ctx context.Context, path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	delay := time.Millisecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, nil
}
