// Package topic is what a node offers for one topic: how its tasks run
// (the executor kind, its agent script, container limits), which spawns it
// accepts (accept rules, checked against a spawn's origin), and which
// environment a spawn may set (the env policy).
//
// It is plain data and pure functions, shared by the leader (which checks
// a spawn against what the live subscribers gossip), the picker (which
// gives a task only to a node that accepts it) and the runner (which
// checks again before it starts an attempt). Everything here is safe for
// concurrent use; a Topic is a value and is never changed once the node
// has it.
package topic
