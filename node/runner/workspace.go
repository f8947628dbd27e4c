package runner

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"

	"github.com/ourci/ourci/node/executor"
)

// workspaceName matches the workspaces the runner makes: TASK.ATTEMPT.
var workspaceName = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[0-9]+$`)

// ClearWorkspaces removes the workspaces a previous life of the node left
// in dir (it crashed while they were in use), first detaching the nosuid
// mounts of its Docker tasks' workspaces (as root). Nothing else in dir is
// touched.
func ClearWorkspaces(dir string, log *slog.Logger) {
	if os.Geteuid() == 0 {
		if k, err := executor.UnmountBelow(dir); err != nil {
			log.Warn("work dir: unmounting the workspaces of a previous run", "err", err)
		} else if k > 0 {
			log.Info("work dir: unmounted workspaces of a previous run", "mounts", k)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && workspaceName.MatchString(e.Name()) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
