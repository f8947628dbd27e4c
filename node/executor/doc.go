// Package executor runs one task attempt as an operating-system process tree
// and lets the caller stop it reliably.
//
// A task attempt is described by a [Spec]: the task's ARGS, an optional agent
// script, the complete environment, a working directory and a writer for the
// combined output. [Host] starts it on this machine and returns a [Process];
// [Fake] is a scripted stand-in for tests of the code that drives executors.
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
// # Process groups and what Stop guarantees
//
// Every attempt runs in its own process group. Stop sends SIGTERM to the
// group and, if the leader is still running after Spec.Grace (default 10s),
// SIGKILL to the group. When the leader exits, for whatever reason, the rest
// of its group is killed with SIGKILL at once: a task's background processes
// never outlive it. The group is only ever signalled while its leader is
// unreaped, so a recycled process ID can never be hit. Processes that leave
// the group on purpose (setsid, setpgid) are not tracked; if one of them
// keeps the output pipe open, Wait stops copying output a short, fixed time
// after the leader exited instead of hanging.
//
// # Concurrency
//
// Host and Fake are safe for concurrent use. All methods of a Process (Wait,
// Stop, Destroy) may be called from any number of goroutines, any number of
// times, before or after the process exits: every Wait returns the same
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
package executor
