// Package executor runs one task attempt as an operating-system process tree
// and lets the caller stop it reliably.
//
// A task attempt is described by a [Spec]: the task's ARGS, an optional agent
// script, the complete environment, a working directory and a writer for the
// combined output (and, for Docker, an image and container labels). [Host]
// starts it on this machine and [Docker] in a container of the image it
// names; both return a [Process]. [Fake] is a scripted stand-in for tests of
// the code that drives executors.
//
// # How Host runs a Spec
//
//   - Script == "" and one arg: shell form, /bin/sh -c ARGS[0], so a seed
//     task such as "OTA=1 ci/fw/esp8266.sh" works as written.
//   - Script == "" and several args: exec form. ARGS[0] is resolved through
//     the PATH found in Spec.Env (never the node's own PATH); an ARGS[0]
//     containing a slash is used as is. Relative PATH entries are ignored.
//   - Script != "": SCRIPT ARGS..., like the seed's
//     `ourci_agent -t TOPIC script.sh`. An executable script is executed
//     directly, anything else is run as /bin/sh SCRIPT ARGS... . A relative
//     Script is taken relative to the node's working directory.
//
// In every form an executable that the kernel refuses with ENOEXEC (a script
// without "#!") is run with /bin/sh instead, as a shell would. The child gets
// exactly Spec.Env (nothing is inherited from the node, not even PWD), stdin
// from /dev/null, and stdout and stderr on one pipe whose contents are copied
// to Spec.Output by a single goroutine, so Output never sees concurrent
// Writes. If Output fails, the rest of the output is drained and dropped so
// the task never blocks on a full pipe.
//
// # Process groups, cgroups and what Stop guarantees
//
// Every attempt runs in its own process group and, with [Host.Cgroups], in
// a cgroup v2 of its own (CGROUP2_MOUNT/ourci/NODE/TASK.ATTEMPT), into which
// the child is born (clone3 with CLONE_INTO_CGROUP): nothing it starts can
// run outside it unless it is root and moves itself out. Stop sends
// SIGTERM to the group and, if the leader is still running after
// Spec.Grace (default 10s), SIGKILL to the group and the whole cgroup.
// When the leader exits, for whatever reason, the rest of its group and
// everything left in its cgroup is killed with SIGKILL at once
// (cgroup.kill; before Linux 5.14, freeze, SIGKILL every process listed,
// thaw): a task's background processes never outlive it, also when they
// left the group (setsid, a daemon's double fork). Wait returns once the
// cgroup is empty and removed. The group is only ever signalled while its
// leader is unreaped, so a recycled process ID can never be hit; a cgroup
// is killed by its directory, never by PID. [Cgroups.Sweep] kills what a
// crashed life of the node left in its attempt cgroups.
//
// Without cgroups (none mounted, or the node is not root) processes that
// leave the group on purpose are not tracked; if one of them keeps the
// output pipe open, Wait stops copying output a short, fixed time after
// the leader exited instead of hanging.
//
// With [Host.User] the task runs as that unprivileged user (uid, gid,
// supplementary groups; never root): Start hands Spec.Dir over to it
// (chown of the tree, mode 0700; files hard-linked from a git mirror stay
// the node's and read-only, see handOver) and sets HOME (the account's, or
// the workspace if it has none), USER and LOGNAME.
//
// # Concurrency
//
// Host, Docker and Fake are safe for concurrent use. All methods of a
// Process (Wait, Stop, Destroy) may be called from any number of goroutines,
// any number of times, before or after the process exits: every Wait returns the same
// result, Stop returns at once (the escalation to SIGKILL runs in the
// background) and only its first call has an effect, and Destroy kills the
// group if needed and blocks until Wait's result is known. Cancelling the
// context given to Start is the same as calling Stop.
//
// Exit codes follow the shell: a leader killed by signal N reports 128+N
// (143 after SIGTERM, 137 after SIGKILL). Wait's error is non-nil only when
// waiting itself failed, never for a non-zero exit.
//
// Host needs Linux.
//
// # How Docker runs a Spec
//
// [Docker] runs every attempt in a fresh container of Spec.Image through the
// Docker Engine API (any engine from API 1.30 on; the client negotiates the
// version). Its lifecycle:
//
//  1. The image must be on the node. If it is not, Start fails with an error
//     naming the image and the node, unless Docker.Pull allows pulling it,
//     in which case the pull's progress goes to Spec.Output. Nothing is
//     pulled by default.
//  2. The container is created. Its command is the whole entrypoint, so the
//     image's ENTRYPOINT and CMD never run: one ARG is the shell form
//     (/bin/sh -c ARGS[0]), several the exec form (ARGS as they are; a
//     command the image lacks ends the attempt with 127, as in a shell,
//     rather than failing Start). Spec.Script is refused: agent scripts run
//     on the host. The workspace (Spec.Dir) is bind-mounted read-write at the
//     same path and is the working directory; every path in Docker.Binds is
//     bind-mounted read-only at the same path, so the ourci-node binary and
//     scripts keep their host paths. The environment is exactly Spec.Env
//     except PATH, which is rebuilt (the directories of the Binds that are
//     files, then DockerPath), HOME, which is the workspace, and USER and
//     LOGNAME, which are dropped. The task runs as Docker.User, by default
//     DefaultUser (65534:65534) when the node is root and the node's own
//     uid:gid otherwise. A root node first hands the workspace over to that
//     user (chown, 0700) and makes it a nosuid,nodev bind mount of itself,
//     which the container's bind mount inherits. The container joins
//     Docker.Network, by default DefaultNetwork. It is labelled with
//     Spec.Labels (the caller's job, task, attempt) and
//     ourci.node=Docker.Node.
//  3. Start attaches to stdout and stderr and registers the wait for the
//     next exit before it starts the container, so no output and no exit can
//     be missed. One goroutine demultiplexes both streams into Spec.Output,
//     live, with the same failure handling as Host.
//  4. Wait returns the container's exit code once its output is copied (at
//     most 2s after the exit). A process killed by signal N reports 128+N.
//  5. Stop asks the engine to stop the container: SIGTERM, then SIGKILL after
//     Spec.Grace rounded up to whole seconds. The container runs an init
//     (docker-init, i.e. tini) as PID 1 that reaps zombies and, set up with
//     TINI_KILL_PROCESS_GROUP=1, forwards the SIGTERM to the task's whole
//     process group, as Host signals its group; when the task's main
//     process exits, the container ends and every process left in it is
//     killed. Cancelling Start's context is the same as Stop.
//  6. Destroy force-removes the container (killing it if it still runs) and
//     its anonymous volumes, then clears every setuid and setgid bit left in
//     the workspace and undoes its nosuid mount. Containers are never auto-removed: the exit
//     code is read first. [Docker.Sweep] removes every container labelled
//     with the node's name, the leftovers of a node that crashed; a node
//     runs it when it starts, before it starts tasks.
//
// # What the Docker defaults stop
//
//   - Not privileged, and no Docker socket mounted: a task cannot reach the
//     engine, hence cannot start a privileged container or mount the host.
//   - Not root: the task runs as DefaultUser (nobody) unless Docker.User
//     says otherwise, so the kept capabilities are not in effect and a
//     file it writes in the workspace is never root's.
//   - All capabilities dropped except CHOWN, DAC_OVERRIDE, FOWNER, SETUID,
//     SETGID and KILL, which root-run builds (Docker.User 0:0) need for
//     ordinary file handling and for dropping privileges (see dockerCaps
//     for each). Gone are, among others, SYS_ADMIN (mount, namespaces),
//     NET_RAW and NET_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_TIME, MKNOD and
//     AUDIT_WRITE.
//   - no-new-privileges: setuid and file-capability binaries in the image
//     cannot give the task more than it started with.
//   - The workspace is nosuid and nodev on the host while the container
//     runs, and no setuid or setgid bit survives the container: a program a
//     container (even as root) makes setuid there runs with its caller's
//     uid on the host.
//   - Limits: DefaultMemory (4 GiB, memory plus swap), DefaultNanoCPUs (2
//     CPUs) and DefaultPids (4096) unless Docker.Memory, NanoCPUs and Pids
//     say otherwise (negative: none): a fork bomb or a leak stays in its
//     container, and one task cannot take the node from the others.
//
// # Network
//
// Containers join DefaultNetwork ("ourci"), a bridge network made on first
// use with traffic between its containers turned off
// (com.docker.network.bridge.enable_icc=false): a task reaches the outside
// and its node, but not the host's loopback (services bound to 127.0.0.1)
// nor another task's container. The node listens on the network's gateway
// ([Docker.Gateway]) and points the task's OURCI_NODE and BLOB_URL there,
// so ourci-node, spawn_task, blob_upload and a plain `curl ${BLOB_URL}/NAME`
// work unchanged. If two nodes make the network at once, all of them use
// the oldest one and remove the others. Docker.Network "host" shares the
// host's network instead (the task reaches its node on 127.0.0.1, as
// before); any other value is used as the network's name as it is.
package executor
