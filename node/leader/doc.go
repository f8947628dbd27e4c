// Package leader holds what the mesh's leader runs: the Dispatcher, its
// single writer (dispatch.go: batched, pipelined Raft entries; picker.go:
// the node chosen for each task), and the duties, each a Duty, started
// once the leadership barrier has passed (every entry of earlier terms
// applied to the local replica) and stopped when leadership ends.
//
// A duty reads the leader's replica through Ledger, sees the mesh through
// Members and writes only through Writer, the one write path (on the
// leader, the dispatcher: batched, with schema gates and typed refusals).
// It decides from what it reads and stamps the time it read from its
// injected clock into the commands it proposes; Apply never reads a
// clock. Duties here are plain structs of those interfaces, tested
// against fakes; the node wires them (node/leader.go), passing in what
// only it has (Raft, gossip, the peer client, GitHub clients) as small
// interfaces and functions. Func wraps a loop that is a function.
//
// Concurrency: the Dispatcher's Submit and Kick are safe from any
// goroutine; its Run is called once per term and answers everything
// submitted, with ErrNotLeader once the term ended. Each duty's Run is
// called once per term, in a goroutine of its own, and returns when its
// context ends. A duty keeps no state
// between terms: a new leader starts from the replica.
package leader
