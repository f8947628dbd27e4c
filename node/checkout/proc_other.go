//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkout

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
)

func setProcessGroup(cmd *exec.Cmd) {}

func flock(ctx context.Context, path string) (func(), error) {
	return nil, errors.New("no cross-process mirror locking on " + runtime.GOOS)
}
