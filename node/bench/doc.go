// Package bench measures OurCI and, in the same run, the physical floor
// beneath each measure, and reports them side by side with the project's
// targets (issue 9). `ourci-node bench` is its command line; the Go
// benchmarks and TestBenchQuick in this package run it at smaller sizes.
//
// Everything runs in this process on 127.0.0.1: a 3-node mesh of real
// nodes (node.Start: Raft on raft-boltdb with fsync, memberlist, the HTTP
// API, the host executor running real /bin/sh processes), a plain 3-node
// Raft group for the floor, bare gossip agents for the gossip measure, and a
// pure ledger (raftfsm.State) for the ledger measure. A leader or worker
// "dies" through node.Node.Kill: its sockets close, nothing is handed over
// and nobody is told, as with kill -9. It comes back on the same ports:
// the mesh's ports are reserved outside the kernel's ephemeral range
// (package node/nodetest/ports, lock files under $TMPDIR/ourci-ports), so
// no other socket takes one while it is down.
//
// Every wait of the harness is bounded and its bound scaled by
// OURCI_TEST_TIMEOUT_SCALE, as the tests' waits are (package
// node/nodetest/wait); a timeout says what it waited for and why it did
// not happen.
//
// How a task's start is seen: every task the bench spawns is
//
//	echo "$OURCI_TASK.$OURCI_ATTEMPT" > PROBE
//
// where PROBE is a FIFO the bench holds open and reads in one goroutine.
// The line's arrival is the task's first instruction (sh's builtin echo:
// no further exec). The floor's process start uses the very same command
// and reader, so the probe's own cost (well under a millisecond: a FIFO
// open and a 14-byte write, one goroutine wake-up) appears on both sides.
//
// Concurrency: a run is one goroutine driving its meshes and floors; the
// meshes it starts run their own goroutines and are closed before Run
// returns. Figures are printed beside the floor measured in the same run.
package bench
