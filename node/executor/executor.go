package executor

import (
	"io"
	"time"
)

// Spec is everything needed to start one task attempt.
type Spec struct {
	Args   []string      // the task's ARGS (from `spawn -- ARGS...`)
	Script string        // agent script path; "" means run Args as a host command
	Env    []string      // full environment, KEY=VALUE; nothing is inherited from the node
	Dir    string        // working directory (exists; created by the caller)
	Output io.Writer     // stdout and stderr combined, written as produced; nil discards
	Grace  time.Duration // SIGTERM → SIGKILL grace on Stop; 0 means DefaultGrace

	// Labels describe the attempt (ourci.job, ourci.task, ourci.attempt):
	// Docker puts them on the container, beside ourci.node; Host names the
	// attempt's cgroup TASK.ATTEMPT after them.
	Labels map[string]string

	// Used by Docker only (Host ignores them):
	Image string // the image the task names; required by Docker
	// ReadOnly lists absolute host paths this attempt alone may read, mounted
	// read-only at the same path inside its container (its job's git
	// mirror); Host ignores it.
	ReadOnly []string
}

// Process is one started attempt.
type Process interface {
	// Wait blocks until the process (the group leader) exits and all its
	// output is copied, and returns its exit code: 128+N when killed by
	// signal N. err is non-nil only for failures to wait, not for non-zero
	// exits. Safe to call from several goroutines; all get the same result.
	Wait() (exitCode int, err error)
	// Stop ends the whole process group: SIGTERM to the group, then SIGKILL
	// to the group (and its cgroup, or container) after the grace period if
	// the leader has not exited. Returns immediately; safe to call many
	// times and after exit.
	Stop()
	// Destroy releases everything: kills the group, cgroup or container
	// with SIGKILL if it is still alive, waits for it and removes what the
	// attempt held. Safe to call twice.
	Destroy() error
}

// DefaultGrace is the SIGTERM → SIGKILL grace used when Spec.Grace is 0.
const DefaultGrace = 10 * time.Second

// Exit codes reported for a leader killed by SIGTERM and by SIGKILL.
const (
	ExitSIGTERM = 128 + 15
	ExitSIGKILL = 128 + 9
)

// grace returns the Spec's grace period with the default applied.
func (s Spec) grace() time.Duration {
	if s.Grace <= 0 {
		return DefaultGrace
	}
	return s.Grace
}

// drainWriter passes writes on to w until w fails once, then swallows them,
// so that a broken Output never blocks the task on a full pipe.
type drainWriter struct {
	w      io.Writer
	failed bool
}

func (d *drainWriter) Write(p []byte) (int, error) {
	if !d.failed && d.w != nil {
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
		}
	}
	return len(p), nil
}
