package executor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// LabelNode is the container label that names the node that started a
// container; Docker.Sweep removes the containers that carry its node's name.
const LabelNode = "ourci.node"

// LabelMesh is the container label that names the mesh (Docker.Mesh), so
// that two meshes whose nodes share a name on one engine never sweep each
// other's containers.
const LabelMesh = "ourci.mesh"

// Container defaults, used when the Docker field is 0 (see the package
// documentation).
const (
	DefaultPids     = 4096    // processes and threads (Docker.Pids)
	DefaultMemory   = 4 << 30 // bytes of memory, swap included (Docker.Memory)
	DefaultNanoCPUs = 2e9     // two CPUs (Docker.NanoCPUs)
	// DefaultUser is the container user of a node that runs as root
	// (Docker.User): nobody:nogroup, so that a container's root is never
	// the host's. A node that is not root runs containers as itself.
	DefaultUser = "65534:65534"
	// DefaultNetwork is the bridge network containers join when
	// Docker.Network is "": made if missing, with traffic between its
	// containers off, so a task reaches its node (on the network's
	// gateway) and the outside, not the host's loopback or other tasks.
	DefaultNetwork = "ourci"
)

// LabelManaged marks the network Docker made (DefaultNetwork).
const LabelManaged = "ourci.managed"

// DockerPath is the fixed part of the PATH a container gets, after the
// directories of the files in Docker.Binds.
const DockerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// dockerCaps are the only capabilities a container keeps (they are only in
// effect when the task runs as root inside the container, that is when the
// node runs as root or Docker.User says so):
//
//   - CHOWN: chown files, e.g. tar or a package manager extracting archives
//     with their owners.
//   - DAC_OVERRIDE: read and write files whatever their mode, as root
//     normally can: build tools running as root write into trees owned by
//     other users (the workspace, /usr/local, caches).
//   - FOWNER: chmod, utime and the like on files root does not own (cp -p,
//     tar, git checkouts of files made by another uid).
//   - SETUID, SETGID: switch to another user, as su, sudo or apt's _apt
//     sandbox do; no-new-privileges still keeps setuid binaries from gaining
//     anything.
//   - KILL: signal processes of other users inside the container (a build
//     that dropped privileges for a child must still be able to stop it).
//
// Everything else (mount, raw sockets, ptrace, module loading, clock and
// network administration, mknod, ...) is dropped.
var dockerCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"}

// dockerAPITimeout bounds the engine calls that clean up after a task.
const dockerAPITimeout = 30 * time.Second

// dockerOutputDelay bounds how long Wait keeps copying output after the
// container has exited.
const dockerOutputDelay = 2 * time.Second

// dockerDestroyDelay bounds how long Destroy waits for the exit code after
// the container was removed before it gives up on the engine's answer.
const dockerDestroyDelay = 10 * time.Second

// Docker runs each task in a fresh container of the image its Spec names,
// through the Docker Engine API. See the package documentation for the
// lifecycle and the security defaults. Configure the fields before the first
// call and do not change them afterwards; the methods are safe for
// concurrent use. A Docker must not be copied after first use.
type Docker struct {
	Client   *client.Client // nil: made from the environment (DOCKER_HOST, ...) on first use
	Node     string         // node name: in the label ourci.node and in error messages; required
	Memory   int64          // bytes, swap included; 0 = DefaultMemory, negative = no limit
	NanoCPUs int64          // 1e9 = one CPU; 0 = DefaultNanoCPUs, negative = no limit
	Pids     int64          // pids limit; 0 = DefaultPids, negative = no limit
	Pull     bool           // may pull a missing image (off by default: a missing image fails the task)
	Network  string         // container network; "" = DefaultNetwork (made if missing), "host" = the host's network
	Mesh     string         // mesh ID: label ourci.mesh; Sweep removes only this mesh's containers
	Binds    []string       // extra absolute host paths mounted read-only at the same path inside (the ourci-node binary, scripts)
	User     string         // UID:GID; "" = DefaultUser for a node running as root, else the node's own uid:gid

	mu   sync.Mutex
	made bool // Client was made here; Close closes it

	netMu sync.Mutex
	netID string // DefaultNetwork's ID, once known
}

// client returns the engine client, making it on first use.
func (d *Docker) client() (*client.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Client == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("executor: docker client for node %s: %w", d.Node, err)
		}
		d.Client, d.made = c, true
	}
	return d.Client, nil
}

// Close releases the client if Docker made it. Processes that are still
// running are not touched, but can no longer be waited for or stopped.
func (d *Docker) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.made || d.Client == nil {
		return nil
	}
	err := d.Client.Close()
	d.Client, d.made = nil, false
	return err
}

// Ping reports whether the Docker engine answers.
func (d *Docker) Ping(ctx context.Context) error {
	cli, err := d.client()
	if err != nil {
		return err
	}
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("executor: docker engine of node %s does not answer: %w", d.Node, err)
	}
	return nil
}

// Sweep force-removes every container labelled ourci.node=d.Node, running or
// not, with its anonymous volumes: the leftovers of a node that crashed. Run
// it when the node starts, before it starts tasks. It returns how many
// containers it removed; containers that vanish meanwhile are not errors.
func (d *Docker) Sweep(ctx context.Context) (removed int, err error) {
	if d.Node == "" {
		return 0, errors.New("executor: docker sweep needs the node's name")
	}
	cli, err := d.client()
	if err != nil {
		return 0, err
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelNode+"="+d.Node)),
	})
	// With a mesh ID, only this mesh's containers are this node's leftovers.
	if err != nil {
		return 0, fmt.Errorf("executor: list containers of node %s: %w", d.Node, err)
	}
	var errs []error
	for _, c := range list {
		if c.Labels[LabelNode] != d.Node { // never trust a filter with a removal
			continue
		}
		if d.Mesh != "" && c.Labels[LabelMesh] != d.Mesh {
			continue
		}
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			removed++
		case cerrdefs.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("executor: remove container %s of node %s: %w", short(c.ID), d.Node, err))
		}
	}
	return removed, errors.Join(errs...)
}

// Start creates a container for s, attaches to its output, starts it and
// returns it as a Process. It fails, leaving no container behind, when ctx
// is already done, when s has no image or no command or names an agent
// script, when the image is missing and may not be pulled, or when the
// engine refuses the container.
func (d *Docker) Start(ctx context.Context, s Spec) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("executor: not started: %w", err)
	}
	cfg, hcfg, err := d.config(s)
	if err != nil {
		return nil, err
	}
	cli, err := d.client()
	if err != nil {
		return nil, err
	}
	out := &drainWriter{w: s.Output}
	if err := d.ensureImage(ctx, cli, s.Image, out); err != nil {
		return nil, err
	}
	netID, err := d.networkID(ctx, cli)
	if err != nil {
		return nil, err
	}
	hcfg.NetworkMode = container.NetworkMode(netID)
	release, err := d.prepareWorkspace(cfg.WorkingDir, cfg.User, out)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			release()
		}
	}()

	created, err := cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, "")
	if err != nil && d.Network == "" && cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "network") {
		// The network was removed since it was looked up: once more.
		d.forgetNetwork()
		if netID, err = d.networkID(ctx, cli); err != nil {
			return nil, err
		}
		hcfg.NetworkMode = container.NetworkMode(netID)
		created, err = cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, "")
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) { // removed since ensureImage looked
			return nil, d.missing(s.Image)
		}
		return nil, fmt.Errorf("executor: create container of image %q on node %s: %w", s.Image, d.Node, err)
	}
	for _, w := range created.Warnings {
		fmt.Fprintf(out, "docker: %s\n", w)
	}
	id := created.ID
	pctx, pcancel := context.WithCancel(context.Background())
	defer func() {
		if !started {
			pcancel()
			rctx, cancel := context.WithTimeout(context.Background(), dockerAPITimeout)
			defer cancel()
			_ = cli.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}()

	// Attach and wait before the start, so that no output and no exit can
	// be missed.
	att, err := cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("executor: attach to container %s on node %s: %w", short(id), d.Node, err)
	}
	// The wait request outlives ctx (a cancel stops the container, it does
	// not stop waiting for it), but Start gives up on it while ctx ends.
	detach := context.AfterFunc(ctx, pcancel)
	defer detach() // a no-op once detached below
	waitC, errC := cli.ContainerWait(pctx, id, container.WaitConditionNextExit)
	select {
	case err := <-errC: // the wait request itself failed
		att.Close()
		return nil, fmt.Errorf("executor: wait for container %s on node %s: %w", short(id), d.Node, err)
	default:
	}
	if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		att.Close()
		return nil, fmt.Errorf("executor: start container %s (image %q) on node %s: %w", short(id), s.Image, d.Node, err)
	}
	if !detach() { // ctx ended while starting: the wait request is gone
		att.Close()
		return nil, fmt.Errorf("executor: not started: %w", ctx.Err())
	}
	started = true

	p := &dockerProcess{
		cli:     cli,
		id:      id,
		node:    d.Node,
		grace:   s.grace(),
		cancel:  pcancel,
		release: release,
		done:    make(chan struct{}),
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(out, out, att.Reader) // one writer for both streams, one goroutine: serialized
	}()
	go p.wait(waitC, errC, att.Close, copied)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				p.Stop()
			case <-p.done:
			}
		}()
	}
	return p, nil
}

// config turns s into the container's configuration.
func (d *Docker) config(s Spec) (*container.Config, *container.HostConfig, error) {
	if d.Node == "" {
		return nil, nil, errors.New("executor: docker executor has no node name")
	}
	if s.Script != "" {
		return nil, nil, fmt.Errorf("executor: agent script %s: agent scripts run on the host, not in a docker container", s.Script)
	}
	if s.Image == "" {
		return nil, nil, fmt.Errorf("executor: no image: a task on a docker topic must name one (node %s)", d.Node)
	}
	var argv []string
	switch len(s.Args) {
	case 0:
		return nil, nil, errors.New("executor: no command: spec has no args")
	case 1:
		argv = []string{shell, "-c", s.Args[0]}
	default:
		argv = append([]string(nil), s.Args...)
	}
	if s.Dir == "" {
		return nil, nil, errors.New("executor: no workspace: spec has no dir")
	}
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("executor: workspace %s: %w", s.Dir, err)
	}

	mounts := []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: dir}}
	var path []string
	seen := map[string]bool{}
	for _, b := range append(append([]string(nil), d.Binds...), s.ReadOnly...) {
		if !filepath.IsAbs(b) {
			return nil, nil, fmt.Errorf("executor: bind %q on node %s: not an absolute path", b, d.Node)
		}
		b = filepath.Clean(b)
		fi, err := os.Stat(b)
		if err != nil {
			return nil, nil, fmt.Errorf("executor: bind %q on node %s: %w", b, d.Node, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: b, Target: b, ReadOnly: true})
		if fi.Mode().IsRegular() {
			if dir := filepath.Dir(b); !seen[dir] {
				seen[dir] = true
				path = append(path, dir)
			}
		}
	}
	path = append(path, DockerPath)

	env := make([]string, 0, len(s.Env)+3)
	for _, kv := range s.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PATH", "HOME", "USER", "LOGNAME": // the node's: meaningless inside
		default:
			env = append(env, kv)
		}
	}
	// TINI_KILL_PROCESS_GROUP: the init process (tini) forwards signals to
	// the task's whole process group, as Host signals its group. HOME is
	// the workspace: the only directory the task's user surely may write.
	env = append(env, "PATH="+strings.Join(path, ":"), "HOME="+dir, "TINI_KILL_PROCESS_GROUP=1")

	labels := make(map[string]string, len(s.Labels)+1)
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels[LabelNode] = d.Node
	if d.Mesh != "" {
		labels[LabelMesh] = d.Mesh
	}

	user, err := d.user()
	if err != nil {
		return nil, nil, err
	}
	network := d.Network
	if network == "" {
		network = DefaultNetwork
	}
	pids := limit(d.Pids, DefaultPids)
	if pids == 0 {
		pids = -1 // the engine's "no limit"
	}
	memory := limit(d.Memory, DefaultMemory)
	useInit := true

	cfg := &container.Config{
		Image: s.Image,
		// The whole command is the entrypoint, so the image's own
		// ENTRYPOINT and CMD never run and never see the task's args: a
		// nil Entrypoint means "the image's", and an empty one is only
		// honoured by some engine versions.
		Entrypoint:   argv,
		Cmd:          nil,
		Env:          env,
		WorkingDir:   dir,
		User:         user,
		Labels:       labels,
		AttachStdout: true,
		AttachStderr: true,
		StopSignal:   "SIGTERM", // not the image's STOPSIGNAL: Stop means SIGTERM, grace, SIGKILL
	}
	hcfg := &container.HostConfig{
		Mounts:         mounts,
		NetworkMode:    container.NetworkMode(network),
		Privileged:     false,
		CapDrop:        []string{"ALL"},
		CapAdd:         append([]string(nil), dockerCaps...),
		SecurityOpt:    []string{"no-new-privileges"},
		Init:           &useInit,
		AutoRemove:     false,
		ReadonlyRootfs: false,
		Resources: container.Resources{
			Memory:    memory,
			NanoCPUs:  limit(d.NanoCPUs, DefaultNanoCPUs),
			PidsLimit: &pids,
		},
	}
	if memory > 0 {
		hcfg.MemorySwap = memory // the limit holds for memory plus swap
	}
	return cfg, hcfg, nil
}

// mountWorkspace is mountNosuid (tests make it fail).
var mountWorkspace = mountNosuid

// limit applies a limit field's convention: 0 is def, negative none (0).
func limit(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// user is the UID:GID containers run as (Docker.User's default applied).
func (d *Docker) user() (string, error) {
	if d.User != "" {
		if _, _, ok := userIDs(d.User); !ok {
			return "", fmt.Errorf("executor: container user %q on node %s: want UID:GID (numbers)", d.User, d.Node)
		}
		return d.User, nil
	}
	if os.Geteuid() == 0 {
		return DefaultUser, nil
	}
	return fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), nil
}

// userIDs parses UID:GID.
func userIDs(user string) (uid, gid int, ok bool) {
	u, g, found := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	return uid, gid, found && err1 == nil && err2 == nil && uid >= 0 && gid >= 0
}

// prepareWorkspace gets the workspace ready for a container running as
// user. A node running as root hands it over to that user (so a non-root
// task can write its checkout) and makes it a nosuid,nodev bind mount of
// itself: the container's bind mount inherits both flags, so a setuid (or
// device) file the task writes there is inert on the host while the
// container runs. The returned func, never nil, is for after the container
// is gone: it clears every setuid and setgid bit left in the workspace,
// then undoes the mount, so no such file is ever on a mount that honours
// it; it is a no-op once it succeeded.
//
// A root node that may not mount (in a container without CAP_SYS_ADMIN)
// still runs a container whose user is not root, whose files can never be
// setuid root, and says so in the task's output (out); it refuses to run a
// root container there.
func (d *Docker) prepareWorkspace(dir, user string, out io.Writer) (release func() error, err error) {
	none := func() error { return nil }
	if os.Geteuid() != 0 {
		return none, nil // the task runs as the node: nothing to give, no setuid to gain
	}
	uid, gid, _ := userIDs(user)
	if uid != 0 {
		if err := handOver(dir, uid, gid); err != nil {
			return none, err
		}
	}
	unmount, err := mountWorkspace(dir)
	if err != nil {
		if uid == 0 || !(errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) {
			return none, err
		}
		fmt.Fprintf(out, "docker: the workspace is not mounted nosuid on node %s (%v); the task's user %s is not root\n", d.Node, err, user)
		unmount = none
	}
	var once sync.Mutex
	done := false
	return func() error {
		once.Lock()
		defer once.Unlock()
		if done {
			return nil
		}
		if err := clearSetuid(dir); err != nil {
			return err
		}
		if err := unmount(); err != nil {
			return err
		}
		done = true
		return nil
	}, nil
}

// clearSetuid removes the setuid and setgid bits of every file under dir
// (symbolic links are not followed).
func clearSetuid(dir string) error {
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 && !m.IsDir() {
			return os.Chmod(p, m&fs.ModePerm|m&fs.ModeSticky)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("executor: clear setuid bits in workspace %s: %w", dir, err)
	}
	return nil
}

// managedMu serialises making DefaultNetwork within this process.
var managedMu sync.Mutex

// networkID returns the network containers join: Docker.Network as it is,
// or the ID of DefaultNetwork, made if missing. The engine may let two
// nodes make it at once (its duplicate check is not atomic): every node
// then picks the oldest of the networks so named and removes the others
// it can, so all agree on one.
func (d *Docker) networkID(ctx context.Context, cli *client.Client) (string, error) {
	if d.Network != "" {
		return d.Network, nil
	}
	d.netMu.Lock()
	defer d.netMu.Unlock()
	if d.netID != "" {
		return d.netID, nil
	}
	managedMu.Lock()
	defer managedMu.Unlock()
	id, err := pickNetwork(ctx, cli)
	if err == nil && id == "" {
		_, err = cli.NetworkCreate(ctx, DefaultNetwork, network.CreateOptions{
			Driver: "bridge",
			// Tasks reach their node and the outside, not one another.
			Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
			Labels:  map[string]string{LabelManaged: "true"},
		})
		if err != nil && (cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists")) {
			err = nil // another node made it meanwhile
		}
		if err == nil {
			id, err = pickNetwork(ctx, cli)
		}
	}
	if err == nil && id == "" {
		err = errors.New("it vanished after it was made")
	}
	if err != nil {
		return "", fmt.Errorf("executor: network %s on node %s: %w", DefaultNetwork, d.Node, err)
	}
	d.netID = id
	return id, nil
}

// forgetNetwork drops the cached network ID (it was removed meanwhile).
func (d *Docker) forgetNetwork() {
	d.netMu.Lock()
	d.netID = ""
	d.netMu.Unlock()
}

// pickNetwork returns the ID of the oldest network named DefaultNetwork
// ("" if there is none), and removes the other ones OurCI made that no
// container uses.
func pickNetwork(ctx context.Context, cli *client.Client) (string, error) {
	list, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", DefaultNetwork))})
	if err != nil {
		return "", err
	}
	var named []network.Summary
	for _, n := range list {
		if n.Name == DefaultNetwork { // the filter matches parts of names too
			named = append(named, n)
		}
	}
	if len(named) == 0 {
		return "", nil
	}
	slices.SortFunc(named, func(a, b network.Summary) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	for _, n := range named[1:] {
		if n.Labels[LabelManaged] == "true" {
			_ = cli.NetworkRemove(ctx, n.ID) // in use: its node moves over on its next start
		}
	}
	return named[0].ID, nil
}

// Gateway returns the host's address on the containers' network, where the
// node must listen to be reachable from its containers (making
// DefaultNetwork first if needed). ok is false for the host network, whose
// containers share the host's loopback, and for a network without an IPv4
// gateway (none).
func (d *Docker) Gateway(ctx context.Context) (addr netip.Addr, ok bool, err error) {
	if d.Network == "host" {
		return netip.Addr{}, false, nil
	}
	cli, err := d.client()
	if err != nil {
		return netip.Addr{}, false, err
	}
	id, err := d.networkID(ctx, cli)
	if err != nil {
		return netip.Addr{}, false, err
	}
	nw, err := cli.NetworkInspect(ctx, id, network.InspectOptions{})
	if err != nil {
		d.forgetNetwork()
		return netip.Addr{}, false, fmt.Errorf("executor: look up network %s on node %s: %w", cmp.Or(d.Network, DefaultNetwork), d.Node, err)
	}
	for _, c := range nw.IPAM.Config {
		if a, err := netip.ParseAddr(c.Gateway); err == nil && a.Is4() {
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// missing is the error for an image that is not on the node.
func (d *Docker) missing(img string) error {
	return fmt.Errorf("executor: image %q is not on node %s and pulling is off for this topic (docker load/import it there)", img, d.Node)
}

// ensureImage checks that img is on the node and, if it is missing and
// d.Pull allows it, pulls it, writing the progress to out.
func (d *Docker) ensureImage(ctx context.Context, cli *client.Client, img string, out io.Writer) error {
	_, err := cli.ImageInspect(ctx, img)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("executor: look up image %q on node %s: %w", img, d.Node, err)
	}
	if !d.Pull {
		return d.missing(img)
	}
	fmt.Fprintf(out, "pulling image %s on node %s\n", img, d.Node)
	if err := pull(ctx, cli, img, out); err != nil {
		return fmt.Errorf("executor: image %q is not on node %s and pulling it failed: %w", img, d.Node, err)
	}
	if _, err := cli.ImageInspect(ctx, img); err != nil {
		return fmt.Errorf("executor: image %q is not on node %s after pulling it: %w", img, d.Node, err)
	}
	return nil
}

// pullMessage is one line of the engine's pull progress stream.
type pullMessage struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// pull pulls img and writes its progress to out, one line per step (the
// progress bars are left out).
func pull(ctx context.Context, cli *client.Client, img string, out io.Writer) error {
	rc, err := cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if m.Progress != "" || m.Status == "" {
			continue
		}
		if m.ID != "" {
			fmt.Fprintf(out, "pull: %s: %s\n", m.ID, m.Status)
		} else {
			fmt.Fprintf(out, "pull: %s\n", m.Status)
		}
	}
}

// short is a container ID as docker ps shows it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// dockerProcess is a Process started by Docker: one container.
type dockerProcess struct {
	cli    *client.Client
	id     string
	node   string
	grace  time.Duration
	cancel context.CancelFunc // ends the wait request; called once the result is known

	release func() error // clears setuid bits, undoes the workspace's nosuid mount (Destroy)

	stopOnce sync.Once

	destroyMu sync.Mutex
	removed   bool

	done chan struct{} // closed once code and err are final
	code int
	err  error
}

// wait runs in its own goroutine and produces the result of Wait.
func (p *dockerProcess) wait(waitC <-chan container.WaitResponse, errC <-chan error, closeOutput func(), copied <-chan struct{}) {
	defer close(p.done)
	defer p.cancel()
	select {
	case res := <-waitC:
		p.code = int(res.StatusCode)
		if res.Error != nil && res.Error.Message != "" {
			p.code, p.err = -1, fmt.Errorf("executor: wait for container %s on node %s: %s", short(p.id), p.node, res.Error.Message)
		}
	case err := <-errC:
		p.code, p.err = p.exitAfter(err)
	}
	timer := time.NewTimer(dockerOutputDelay)
	select {
	case <-copied:
	case <-timer.C:
		// The engine keeps the stream open past the exit: stop reading.
	}
	timer.Stop()
	closeOutput() // unblocks the copy if it is still reading
	<-copied
}

// exitAfter asks the engine for the exit code after the wait request failed
// with err (engine restarted, connection lost, Destroy gave up).
func (p *dockerProcess) exitAfter(err error) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerAPITimeout)
	defer cancel()
	info, ierr := p.cli.ContainerInspect(ctx, p.id)
	if ierr == nil && info.State != nil && info.State.Status == container.StateExited {
		return info.State.ExitCode, nil
	}
	return -1, fmt.Errorf("executor: wait for container %s on node %s: %w", short(p.id), p.node, err)
}

// Wait implements Process.
func (p *dockerProcess) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Stop implements Process: the engine sends SIGTERM, waits the grace period
// (rounded up to whole seconds) and sends SIGKILL.
func (p *dockerProcess) Stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		go func() {
			secs := int((p.grace + time.Second - 1) / time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), p.grace+dockerAPITimeout)
			defer cancel()
			err := p.cli.ContainerStop(ctx, p.id, container.StopOptions{Timeout: &secs})
			if err != nil && !cerrdefs.IsNotFound(err) {
				// The engine did not stop it: kill it at least.
				_ = p.cli.ContainerKill(ctx, p.id, "KILL")
			}
		}()
	})
}

// Destroy implements Process: it force-removes the container (killing it if
// it still runs) with its anonymous volumes, waits for Wait's result and
// releases the workspace (prepareWorkspace).
func (p *dockerProcess) Destroy() error {
	p.destroyMu.Lock()
	defer p.destroyMu.Unlock()
	if !p.removed {
		ctx, cancel := context.WithTimeout(context.Background(), dockerAPITimeout)
		err := p.cli.ContainerRemove(ctx, p.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		// Not found: removed already (Sweep, an operator). Conflict: a
		// removal is in progress elsewhere.
		if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("executor: remove container %s on node %s: %w", short(p.id), p.node, err)
		}
		p.removed = true
	}
	timer := time.NewTimer(dockerDestroyDelay)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cancel() // the engine never answered the wait: give up on it
		<-p.done
	}
	_, err := p.Wait()
	// The container is gone: nothing writes in the workspace any more.
	return errors.Join(err, p.release()) // release is a no-op once it succeeded
}
