package node

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/tasklog"
	"github.com/ourci/ourci/raftfsm"
)

// execState is how this node runs its tasks: set up by setupExecutors when
// the node starts.
type execState struct {
	host     executor.Host // for host and agent-script topics
	cgErr    error         // why host tasks run without cgroups
	warnOnce sync.Once

	apiMu sync.Mutex
	apis  map[netip.Addr]string // container network gateway → this node's API URL on it
	topic map[string]string     // Docker topic → the API URL its containers reach
}

// nodeKey names this node's own things on the machine (its cgroup, its
// default work directory with a task user): the node's name and a digest
// of its data directory, as nodes of several meshes may share a name.
func nodeKey(name, dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	sum := sha256.Sum256([]byte(dataDir))
	return name + "-" + hex.EncodeToString(sum[:4])
}

// setupExecutors prepares the host executor before the node starts tasks
// (and before killOrphans sweeps): the task user and its work directory,
// and a cgroup of the node's own for its attempts, or the reason it has
// none.
func (n *Node) setupExecutors() error {
	if n.cfg.Executor != nil {
		return nil
	}
	if name := n.cfg.TaskUser; name != "" {
		u, err := executor.LookupUser(name)
		if err != nil {
			return fmt.Errorf("%w: --task-user: %w", ErrConfig, err)
		}
		if os.Geteuid() != 0 {
			return fmt.Errorf("%w: --task-user %s: running tasks as another user needs the node to run as root", ErrConfig, name)
		}
		// The data directory (ledger, secret, logs, blobs, mirrors) is the
		// node's alone, whatever mode it was made with.
		if err := os.Chmod(n.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("node: data dir: %w", err)
		}
		if err := taskWorkDir(n.cfg.WorkDir, u); err != nil {
			return err
		}
		n.exec.host.User = u
		n.log.Info("host tasks run as their own user", "task_user", u.String(), "work_dir", n.cfg.WorkDir)
	}
	c, err := executor.OpenCgroups(nodeKey(n.cfg.Name, n.cfg.DataDir))
	if err != nil {
		n.exec.cgErr = err
	} else {
		n.exec.host.Cgroups = c
	}
	if slices.ContainsFunc(n.cfg.Topics, func(t Topic) bool { return t.Describe().Shared }) {
		n.warnNoCgroups()
	}
	return nil
}

// warnNoCgroups says once that host tasks cannot be fully contained.
func (n *Node) warnNoCgroups() {
	if n.exec.cgErr == nil {
		return
	}
	n.exec.warnOnce.Do(func() {
		n.log.Warn("host tasks run in process groups only, without cgroups: a process a task starts outside its process group (setsid, a daemon) can outlive its cancel, timeout and the crash sweep; run the node as root on a machine with cgroup v2", "err", n.exec.cgErr)
	})
}

// closeExecutors removes what setupExecutors made (the node's cgroup, once
// its attempts are gone).
func (n *Node) closeExecutors() {
	n.closeBackends()
	if c := n.exec.host.Cgroups; c != nil {
		if err := c.Close(); err != nil {
			n.log.Warn("cgroups", "err", err)
		}
	}
}

// taskWorkDir makes the work directory for a task user: the node's (0711,
// so the user can reach its workspace but not list the others), on a path
// every directory of which the user may pass, and no other user could have
// put there in the node's stead.
func taskWorkDir(dir string, u *executor.User) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("node: work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("node: work dir: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("node: work dir: %w", err)
	}
	for d := real; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("node: work dir: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 && int(st.Uid) != os.Geteuid() || fi.Mode()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("%w: --work-dir %s: %s (mode %v, owner %d) may be changed by another user: give a work directory on a path only root controls", ErrConfig, dir, d, fi.Mode(), st.Uid)
		}
		if !searchable(fi, st, u) {
			return fmt.Errorf("%w: --task-user %s cannot reach the workspaces in %s: %s is mode %v (the data directory is 0700): give --work-dir a directory outside it that the user may reach", ErrConfig, u, dir, d, fi.Mode().Perm())
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// searchable reports whether u may pass through the directory fi.
func searchable(fi fs.FileInfo, st *syscall.Stat_t, u *executor.User) bool {
	m := fi.Mode().Perm()
	switch {
	case st.Uid == u.UID:
		return m&0o100 != 0
	case st.Gid == u.GID || slices.Contains(u.Groups, st.Gid):
		return m&0o010 != 0
	}
	return m&0o001 != 0
}

// backendFor returns what runs a topic's tasks: the configured override
// (tests), else the topic's executor from the registry, made on first use
// (one per topic, as topics differ in limits).
func (n *Node) backendFor(t Topic) (executor.Backend, error) {
	if n.cfg.Executor != nil {
		return executor.Only(n.cfg.Executor), nil
	}
	kind := t.ExecutorKind()
	if kind == executor.KindHost || kind == executor.KindAgent {
		n.warnNoCgroups()
	}
	n.backendMu.Lock()
	defer n.backendMu.Unlock()
	if b, ok := n.backends[t.Name]; ok {
		return b, nil
	}
	o := executor.Options{
		Node: n.cfg.Name, Mesh: n.cfg.Secret.MeshID(), Host: n.exec.host,
		Memory: t.Memory, NanoCPUs: int64(t.CPUs * 1e9), Pids: t.Pids, Pull: t.Pull, Network: t.Network, User: t.User,
	}
	if t.Describe().Image {
		if bin := n.binary(); bin != "" {
			o.Binds = append(o.Binds, bin) // ourci-node, on PATH inside the container
			if dynamic(bin) {
				n.log.Warn("ourci-node is dynamically linked: inside images without a matching libc, tasks cannot run spawn_task or blob_upload; build it with CGO_ENABLED=0", "binary", bin)
			}
		}
	}
	b, err := executor.Default.New(kind, o)
	if err != nil {
		return nil, fmt.Errorf("node: topic %s: %w", t.Name, err)
	}
	n.backends[t.Name] = b
	return b, nil
}

// prepareTopic makes sure a topic's tasks can reach this node before one
// of them starts: when its backend names a gateway (a Docker bridge
// network, the default), the node listens there, on a port of its own,
// with its whole API (every request still needs a token), and the task's
// OURCI_NODE and BLOB_URL point there (taskAPI). Elsewhere (the host
// network, host tasks) the tasks reach the node on its own address.
func (n *Node) prepareTopic(ctx context.Context, t Topic) error {
	b, err := n.backendFor(t)
	if err != nil {
		return err
	}
	gw, ok, err := b.Gateway(ctx)
	if err != nil || !ok {
		return err
	}
	n.exec.apiMu.Lock()
	defer n.exec.apiMu.Unlock()
	url, ok := n.exec.apis[gw]
	if !ok {
		if err := n.ctx.Err(); err != nil {
			return fmt.Errorf("node: stopping: %w", err)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
		if err != nil {
			return fmt.Errorf("node: listen for the tasks of topic %s on their network's gateway %s: %w", t.Name, gw, err)
		}
		// The containers' own per-client cap, as on the public listener.
		limited := newConnLimit(ln, n.cfg.MaxConnsPerClient, n.cfg.MaxConnsLoopback, n.connRefused)
		n.goFunc(func() { // ends when the node closes its HTTP server (which closes ln)
			if err := n.httpSrv.Serve(limited); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) && n.ctx.Err() == nil {
				n.log.Warn("node: container network listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
		url = "http://" + net.JoinHostPort(gw.String(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		if n.exec.apis == nil {
			n.exec.apis, n.exec.topic = map[netip.Addr]string{}, map[string]string{}
		}
		n.exec.apis[gw] = url
		n.log.Info("listening for a topic's tasks on their network's gateway", "topic", t.Name, "url", url)
	}
	n.exec.topic[t.Name] = url
	return nil
}

// taskAPI is the base URL of this node's API as a task of topic reaches it.
func (n *Node) taskAPI(topic string) string {
	n.exec.apiMu.Lock()
	defer n.exec.apiMu.Unlock()
	if url, ok := n.exec.topic[topic]; ok {
		return url
	}
	return n.httpURL
}

// sweepBackends removes what a previous life of this node left behind
// (it crashed while tasks ran): one sweep per kind of executor the topics
// use beyond the host's (whose cgroups killOrphans sweeps before the node
// starts), as their leftovers carry the node's label, not the topic's.
func (n *Node) sweepBackends(ctx context.Context) {
	swept := map[executor.Kind]bool{executor.KindHost: true, executor.KindAgent: true}
	for _, t := range n.offer.Load().topics {
		kind := t.ExecutorKind()
		if swept[kind] {
			continue
		}
		swept[kind] = true
		b, err := n.backendFor(t)
		if err != nil {
			n.log.Warn("executor: sweeping leftovers", "kind", kind, "err", err)
			continue
		}
		removed, err := b.Sweep(ctx)
		if err != nil {
			n.log.Warn("executor: sweeping leftovers of a previous run", "kind", kind, "err", err)
		} else if removed > 0 {
			n.log.Info("executor: removed leftovers of a previous run", "kind", kind, "removed", removed)
		}
	}
}

// closeBackends releases the backends made for the topics.
func (n *Node) closeBackends() {
	n.backendMu.Lock()
	defer n.backendMu.Unlock()
	for name, b := range n.backends {
		if err := b.Close(); err != nil {
			n.log.Warn("executor: close", "topic", name, "err", err)
		}
	}
}

// dynamic reports whether the executable at path needs a dynamic loader.
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// binary is the ourci-node executable tasks should find first on PATH.
func (n *Node) binary() string {
	if n.cfg.Binary != "" {
		return n.cfg.Binary
	}
	if exe, err := os.Executable(); err == nil && strings.HasPrefix(filepath.Base(exe), "ourci-node") {
		return exe
	}
	return ""
}

// runnerHost is what the runner asks of its node (runner.Host).
type runnerHost struct{ n *Node }

func (h runnerHost) Topic(name string) (Topic, bool)                  { return h.n.offer.Load().topic(name) }
func (h runnerHost) TaskAPI(topic string) string                      { return h.n.taskAPI(topic) }
func (h runnerHost) Unhealthy() string                                { return h.n.Unhealthy() }
func (h runnerHost) NoteWriteError(err error)                         { h.n.noteWriteError(err) }
func (h runnerHost) StreamLog(t *raftfsm.Task, l *tasklog.Log) func() { return h.n.streamLog(t, l) }
func (h runnerHost) KeepLog(t *raftfsm.Task, l *tasklog.Log)          { h.n.keepLog(t, l) }

// Backend returns the topic's backend with its network prepared.
func (h runnerHost) Backend(ctx context.Context, t Topic) (executor.Backend, error) {
	if err := h.n.prepareTopic(ctx, t); err != nil {
		return nil, err
	}
	return h.n.backendFor(t)
}

// reporter is the runner's way to the ledger: the node's write path
// (applyReport), its refusals runner.ErrRefused.
type reporter struct{ n *Node }

func (r reporter) Report(ctx context.Context, rep api.Report) error { return r.n.applyReport(ctx, rep) }
