// Package faults lets tests cut the links between in-process nodes, so
// partition tests need neither root nor iptables.
//
// A node given a Faults (node.Config.Faults; nil in production, where
// none of this code runs) asks it before each Raft dial, each gossip
// packet and stream, and each peer HTTP dial, and asks it again on every
// read and write of a connection it opened: a cut also breaks the
// connections already open, as a pulled cable would. Only the dialing or
// sending side asks, so a partition is the cut of both directions (Net's
// Partition does that).
//
// The package imports nothing of OurCI: raftfsm, gossip and node all use it.
//
// Concurrency: a Net is safe for concurrent use: Partition and Heal may run
// while the nodes dial and send through it.
package faults
