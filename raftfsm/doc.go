// Package raftfsm is OurCI's ledger: the deterministic state machine that the
// Raft group replicates on every node.
//
// It holds jobs and their tasks, which node runs which attempt of a task, and
// how each task ended. Three layers live here:
//
//   - State (state.go, apply*.go): plain data and the pure transition
//     function. Apply(State, Command) never reads the clock, randomness or
//     disk; times, IDs and choices (which node runs a task) are stamped by the
//     leader into the command before it is proposed. Map iteration order
//     never reaches state: everything ordered is kept in slices.
//   - Commands (command.go): a typed CommandType byte followed by a JSON
//     payload. Values are explicit and append-only. A batch command carries
//     several commands in one log entry so the leader can amortise one Raft
//     round trip over many requests.
//   - FSM (fsm.go, snapshot.go): the raft.FSM adapter. It guards State with a
//     RWMutex, publishes a change notification after every apply, and
//     snapshots by copying a view under the read lock and streaming it out
//     afterwards.
//   - Raft (raft.go, transport.go): hashicorp/raft on raft-boltdb, with its
//     stream layer on the node's peer port, where meshtls admits only nodes
//     of the mesh (mutual TLS) and hands Raft the connections that
//     negotiated its protocol.
//
// Decoding an entry that was committed to the log but cannot be understood
// panics: continuing would let replicas diverge. A domain refusal (spawning
// into a closed job, a report from a superseded attempt) is not a failure of
// the log; it is returned as an error value inside the apply result, and the
// state is unchanged.
//
// Concurrency: State is not safe for concurrent use; FSM is. Readers use
// FSM.Read, which holds the read lock for the duration of the callback; the
// callback must not retain pointers into State after it returns.
package raftfsm
