// Package httpapi is the node's HTTP API: the route table, the middleware
// every request passes (authentication, roles, the relay of writes to the
// leader, body limits, the ledger index of a write), the answers' shape
// (JSON, errors with api.Code*), and the handlers grouped by resource:
// jobs and spawns (jobs.go), a node's writes (writes.go), the Raft group
// and drains (operator.go).
//
// It meets its node through the small interfaces of server.go: the
// ledger replica (Read, Watch, Index), the one Writer (leader.Writer: every
// write goes through it), leadership (relay.go), and one service per
// resource (Jobs, Reports, Operator) that does the work a handler asks for.
// Routes whose handlers still live in package node (blobs, logs, the
// webhook, keyring, snapshots, metrics and the UI) come in as Services;
// each moves here behind a service of its own.
//
// Concurrency: a Server is configured once, before Routes, and read-only
// after; its handlers run on the HTTP server's goroutines, one per request,
// and hold no state between requests. The services must be safe for
// concurrent use.
package httpapi
