package node

import (
	"context"
	"runtime"

	"github.com/ourci/ourci/node/executor"
)

// Executor starts task attempts. It is declared here, where it is used;
// node/executor holds the implementations (host processes, a fake for tests).
type Executor interface {
	Start(ctx context.Context, s executor.Spec) (executor.Process, error)
}

func defaultSlots() int { return runtime.NumCPU() }
