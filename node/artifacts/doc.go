// Package artifacts keeps a node's blob copies in line with the ledger:
// it fetches a copy the node lacks from a holder the ledger names
// (Fetcher.Ensure: live holders first, verified while it streams, recorded
// only once on stable storage), and it collects (Collector.Collect): copies
// the ledger no longer knows are deleted after a grace period, and records
// of copies this node no longer has are withdrawn, so replication makes a
// new copy and fetchers stop asking here. After an unclean stop it
// re-hashes the copies the previous run may not have flushed
// (VerifyUnflushed).
//
// It meets its node through small interfaces: the ledger replica
// (Ledger), the mesh (Members: who is alive, where to reach them) and a
// Recorder for what the ledger must learn (a copy added or gone), which
// the node writes through its one write path.
//
// Concurrency: a Fetcher's Ensure may run on many goroutines at once (the
// blob store joins fetches of one blob); a Collector runs one pass at a
// time (the node's collection loop). Neither holds state between calls
// but the store's.
package artifacts
