package executor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Kind names an executor: how a topic's tasks run. A topic names its kind
// (`--topic T` host, `--topic T=SCRIPT` agent, `--topic T=docker`); the
// node makes one Backend per topic through a Registry.
type Kind string

// The kinds this package provides.
const (
	KindHost   Kind = "host"   // the task's ARGS as a host command ([Host])
	KindAgent  Kind = "agent"  // SCRIPT ARGS... on the host ([Host] with Spec.Script)
	KindDocker Kind = "docker" // a container of the image the task names ([Docker])
	KindFake   Kind = "fake"   // nothing runs; the test decides ([Fake])
)

// Backend runs one topic's attempts. Every executor of this package is one.
type Backend interface {
	// Start starts one attempt (see [Host.Start], [Docker.Start]).
	Start(ctx context.Context, s Spec) (Process, error)
	// Sweep removes what attempts of a previous life of the node left
	// behind (it crashed while they ran): cgroups, containers. Run it when
	// the node starts, before it starts tasks; it returns how many it
	// removed.
	Sweep(ctx context.Context) (removed int, err error)
	// Gateway is the address the backend's tasks reach the node on when it
	// is not the node's own (a container network's gateway, where the node
	// must listen); ok is false when they reach the node where it is.
	Gateway(ctx context.Context) (addr netip.Addr, ok bool, err error)
	// Close releases what the backend holds (not its running attempts).
	Close() error
}

// Description says what a kind of executor needs from a task and gives it.
type Description struct {
	Kind Kind
	// Image: each task names an image (the first argument of the seed's
	// spawn_task form, or --image), which the executor runs it in.
	Image bool
	// Shared: the task runs in the node's own file system and may read the
	// node's git mirrors directly (a task user gets standalone checkouts).
	Shared bool
	// Limits: container limits (--topic-memory, -cpus, -pids, -network,
	// -user) apply.
	Limits bool
	// Script: the topic names a script that runs each task (agent).
	Script bool
}

// Options are what a factory builds a topic's Backend from.
type Options struct {
	Node string // the node's name; required
	Mesh string // the mesh ID (labels; a sweep removes only this mesh's leftovers)
	Host Host   // the node's host executor: cgroups and task user (host and agent)

	// For Docker (see the fields of [Docker]).
	Memory, NanoCPUs, Pids int64
	Pull                   bool
	Network, User          string
	Binds                  []string

	Fake *Fake // for KindFake: the test's Fake
}

// Factory makes the Backend of one topic of its kind.
type Factory struct {
	Describe Description
	New      func(Options) (Backend, error)
}

// ErrUnknownKind is a kind no factory is registered for.
var ErrUnknownKind = errors.New("executor: unknown kind")

// Registry holds one Factory per Kind: adding an executor is one entry.
type Registry map[Kind]Factory

// Default is the registry of this package's executors.
var Default = Registry{
	KindHost:   {Describe: Description{Kind: KindHost, Shared: true}, New: hostBackend},
	KindAgent:  {Describe: Description{Kind: KindAgent, Shared: true, Script: true}, New: hostBackend},
	KindDocker: {Describe: Description{Kind: KindDocker, Image: true, Limits: true}, New: dockerBackend},
	KindFake:   {Describe: Description{Kind: KindFake}, New: fakeBackend},
}

// Lookup returns kind's factory, or ErrUnknownKind naming the known ones.
func (r Registry) Lookup(kind Kind) (Factory, error) {
	f, ok := r[kind]
	if !ok || f.New == nil {
		return Factory{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownKind, kind, strings.Join(r.names(), ", "))
	}
	return f, nil
}

// New makes a Backend of kind.
func (r Registry) New(kind Kind, o Options) (Backend, error) {
	f, err := r.Lookup(kind)
	if err != nil {
		return nil, err
	}
	return f.New(o)
}

func (r Registry) names() []string {
	var out []string
	for k := range r {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}

func hostBackend(o Options) (Backend, error) { return o.Host, nil }

func dockerBackend(o Options) (Backend, error) {
	if o.Node == "" {
		return nil, errors.New("executor: docker needs the node's name")
	}
	return &Docker{
		Node: o.Node, Mesh: o.Mesh, Memory: o.Memory, NanoCPUs: o.NanoCPUs, Pids: o.Pids,
		Pull: o.Pull, Network: o.Network, User: o.User, Binds: o.Binds,
	}, nil
}

func fakeBackend(o Options) (Backend, error) {
	if o.Fake == nil {
		return nil, errors.New("executor: the fake kind needs Options.Fake")
	}
	return o.Fake, nil
}

// Only makes a Backend of anything that starts attempts (tests hand the
// node one starter for every topic): it sweeps nothing and has no gateway.
func Only(s Starter) Backend {
	if b, ok := s.(Backend); ok {
		return b
	}
	return starter{s}
}

type starter struct{ Starter }

// Starter starts attempts: the part of a Backend every executor has.
type Starter interface {
	Start(ctx context.Context, s Spec) (Process, error)
}

func (starter) Sweep(context.Context) (int, error) { return 0, nil }
func (starter) Gateway(context.Context) (netip.Addr, bool, error) {
	return netip.Addr{}, false, nil
}
func (starter) Close() error { return nil }

// Sweep kills what attempts of a previous life left in the node's cgroups
// (none without Cgroups; process groups are the node's run records' to
// sweep).
func (h Host) Sweep(context.Context) (int, error) {
	if h.Cgroups == nil {
		return 0, nil
	}
	return h.Cgroups.Sweep()
}

// Gateway: host tasks reach the node where it is.
func (Host) Gateway(context.Context) (netip.Addr, bool, error) { return netip.Addr{}, false, nil }

// Close releases nothing: the node's cgroups are its own to close.
func (Host) Close() error { return nil }

// Sweep: a Fake leaves nothing behind.
func (*Fake) Sweep(context.Context) (int, error) { return 0, nil }

// Gateway: a Fake's tasks reach the node where it is.
func (*Fake) Gateway(context.Context) (netip.Addr, bool, error) { return netip.Addr{}, false, nil }

// Close releases nothing.
func (*Fake) Close() error { return nil }

// The executors of this package are Backends.
var (
	_ Backend = Host{}
	_ Backend = (*Docker)(nil)
	_ Backend = (*Fake)(nil)
)
