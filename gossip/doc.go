// Package gossip runs the mesh's membership layer on hashicorp/memberlist:
// who is alive, and what each node says about itself (Meta: its Raft and
// HTTP addresses, the topics it subscribes to, its task slots).
//
// It knows nothing of jobs or tasks. The node reads Members() when it needs
// the live view and waits on Watch() to learn that the view changed.
// Correctness never waits on gossip: the ledger decides; gossip only says
// which nodes are alive and what they offer.
//
// Concurrency: all methods are safe for concurrent use. memberlist calls the
// delegates on its own goroutines; they never block.
package gossip
