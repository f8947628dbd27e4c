// Package metrics is a node's Prometheus instrumentation: one registry per
// node (never the global default registry, so that several nodes can run
// in one process, as the tests do), the collectors on it, and the
// /metrics handler.
//
// Two kinds of metric live here. Events (a task started, a Raft entry
// committed, blob bytes sent) are counters and histograms the node updates
// as they happen, through the nil-safe methods of Metrics. State (tasks by
// topic and state, Raft role, gossip members, blob bytes stored) is read
// from its source at scrape time by collectors, so it is never stale and
// costs nothing between scrapes.
//
// Every name starts with "ourci_"; durations are in seconds, sizes in
// bytes. docs/ARCHITECTURE.md lists them with where each is observed.
//
// Concurrency: a Metrics is safe for concurrent use (Prometheus
// collectors); scrape-time collectors read the node through the callbacks
// it was made with.
package metrics
