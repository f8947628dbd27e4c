// Package node is the OurCI daemon: it wires the ledger (raftfsm), gossip,
// the task runner and the HTTP API into one running node.
//
// What runs where:
//
//   - Every node: gossip (who is alive, what they subscribe to), a Raft
//     member with its own ledger replica, the runner (node/runner, wired
//     in executors.go's runnerHost and reporter), which starts the
//     attempts its replica assigns to this node and stops those the
//     ledger takes away, and the API (http.go). Reads are answered from
//     the local replica; writes are relayed to the leader.
//   - The leader only (leader.go): the dispatcher (node/leader), the single
//     writer that batches proposals and chooses nodes for tasks; Raft
//     membership (voters up to five, then non-voters); job deadlines and a
//     backstop for tasks whose node stopped reporting.
//
// Guarantees: a task runs at least once; every attempt is fenced by its
// number, and the ledger refuses reports from a superseded attempt. A job
// closes when every task in it is terminal; a spawn is acknowledged only
// after the ledger applied it. See docs/ARCHITECTURE.md.
//
// Concurrency: a Node is safe for concurrent use. The leader's loops run
// under a context cancelled when leadership ends. Nothing here holds the
// FSM lock across I/O: state is copied out (Clone) under FSM.Read.
package node
