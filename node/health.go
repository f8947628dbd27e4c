package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/runner"
)

// A node that cannot write its data directory or its Raft log must not take
// work it cannot do, nor pass for healthy. health tracks why it cannot:
//
//   - the data directory: free space below Config.MinFreeDisk, or a write
//     probe (a small file written and flushed) failing;
//   - the Raft log: the last append failed (raftfsm reports each change);
//   - a write somebody else saw fail (a task's output, a blob) asks for a
//     probe at once.
//
// While unhealthy the node gossips the reason (the picker gives it nothing;
// the leader hands its assigned, unstarted attempts to other nodes as
// infrastructure retries), its runner starts nothing, and GET /v1/health
// answers 503 with the reason. It turns healthy again by itself once the
// probe and the Raft log succeed.
type health struct {
	mu      sync.Mutex
	disk    string // why the data directory fails, "" when it works
	raftLog string // why the Raft log fails
	kick    chan struct{}
}

// healthEvery is how often the free space is read; the write probe runs
// every probeEvery, and every healthEvery while unhealthy.
const (
	healthEvery = 2 * time.Second
	probeEvery  = 30 * time.Second
)

// Unhealthy returns why the node cannot take work, "" when it can.
func (n *Node) Unhealthy() string {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	return joinReasons(n.health.disk, n.health.raftLog)
}

func joinReasons(rs ...string) string {
	var out []string
	for _, r := range rs {
		if r != "" {
			out = append(out, r)
		}
	}
	return strings.Join(out, "; ")
}

// replicaFrozen reports whether the Raft log cannot be appended to: the
// replica applies nothing new until it can.
func (n *Node) replicaFrozen() bool {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	return n.health.raftLog != ""
}

// frozenWhy says why the Raft log cannot be appended to (the node's
// health, as Unhealthy words it), or "" when it can.
func (n *Node) frozenWhy() string {
	if !n.replicaFrozen() {
		return ""
	}
	return n.Unhealthy()
}

// noteRaftLog hears from raftfsm whether the last Raft log append worked.
func (n *Node) noteRaftLog(err error) {
	reason := ""
	if err != nil {
		reason = "cannot append to the Raft log: " + runner.ErrText(err)
	}
	n.health.mu.Lock()
	changed := n.health.raftLog != reason
	n.health.raftLog = reason
	n.health.mu.Unlock()
	if changed {
		n.probeSoon()
	}
}

// noteWriteError hears of a failed write in the data directory (a task's
// output, a blob): the probe runs at once.
func (n *Node) noteWriteError(err error) {
	if err != nil {
		n.probeSoon()
	}
}

func (n *Node) probeSoon() {
	select {
	case n.health.kick <- struct{}{}:
	default:
	}
}

// healthLoop probes the data directory and gossips changes of health.
func (n *Node) healthLoop() {
	lastProbe := time.Time{}
	gossiped := ""
	for {
		reason := n.checkFreeSpace()
		if reason == "" && (time.Since(lastProbe) >= probeEvery || n.Unhealthy() != "") {
			reason = n.probeWrite()
			lastProbe = time.Now()
		}
		n.health.mu.Lock()
		n.health.disk = reason
		n.health.mu.Unlock()
		if now := n.Unhealthy(); now != gossiped {
			if now != "" {
				n.log.Error("node unhealthy: taking no work until this is fixed", "reason", now)
			} else {
				n.log.Info("node healthy again: taking work")
			}
			n.updateMeta(func(m *gossip.Meta) { m.Unhealthy = now })
			gossiped = now
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.health.kick:
			lastProbe = time.Time{} // probe the disk now
		case <-n.cfg.Clock.After(healthEvery):
		}
	}
}

// checkFreeSpace reports low space in the data directory.
func (n *Node) checkFreeSpace() string {
	var st unix.Statfs_t
	if err := unix.Statfs(n.cfg.DataDir, &st); err != nil {
		return "cannot read the data directory's free space: " + runner.ErrText(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < n.cfg.MinFreeDisk {
		return fmt.Sprintf("disk nearly full: %s free in %s, below --min-free-disk %s", api.ByteSize(free), n.cfg.DataDir, api.ByteSize(n.cfg.MinFreeDisk))
	}
	return ""
}

// probeWrite writes, flushes and removes a small file in the data directory.
func (n *Node) probeWrite() string {
	p := filepath.Join(n.cfg.DataDir, ".health-probe")
	err := writeFileSync(p, make([]byte, 4096))
	os.Remove(p)
	if err != nil {
		return "cannot write the data directory: " + runner.ErrText(err)
	}
	return ""
}

// isNoSpace reports whether err comes from a full disk or quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
