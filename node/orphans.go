package node

import (
	"path/filepath"

	"github.com/ourci/ourci/node/runner"
)

// A crashed life of the node leaves its host tasks' process groups, their
// attempt cgroups and their workspaces behind: the next life clears all
// three before it takes work (runner.Records names the groups and the
// attempts it had started, which are handed back, never run again).

func (n *Node) runDir() string { return filepath.Join(n.cfg.DataDir, "run") }

// killOrphans kills what a previous life of this node left running (its
// run records' process groups, then everything left in its attempt
// cgroups: processes that left their group, setsid, daemons), removes its
// workspaces, and returns how many it found alive and every attempt the
// previous life had started (task → attempt).
func (n *Node) killOrphans() (int, map[string]int) {
	killed, started := n.records.KillOrphans(n.log)
	if c := n.exec.host.Cgroups; c != nil {
		k, err := n.exec.host.Sweep(n.ctx)
		if err != nil {
			n.log.Warn("could not clear every attempt cgroup left by a previous run of this node", "cgroup", c.Dir(), "err", err)
		}
		if k > 0 {
			n.log.Warn("killed what tasks of a previous run of this node left in their cgroups", "cgroups", k, "cgroup", c.Dir())
		}
		killed += k
	}
	if n.cfg.WorkDir != "" {
		runner.ClearWorkspaces(n.cfg.WorkDir, n.log)
	}
	return killed, started
}
