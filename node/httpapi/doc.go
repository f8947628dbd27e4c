// Package httpapi is the node's HTTP API: the route table, the middleware
// every request passes (authentication, roles, the relay of writes to the
// leader, body limits, the ledger index of a write), the answers' shape
// (JSON, errors with api.Code*), and the handlers grouped by resource:
// jobs and spawns (jobs.go), a node's writes (writes.go), the Raft group
// and drains (operator.go), health, ledger and metrics (mesh.go), the
// gossip keyring (keyring.go), ledger snapshots (snapshot.go), blobs
// (blobs.go), task logs (logs.go) and GitHub's webhook (webhook.go); the
// browser UI (node/web) is mounted on the same table (RegisterUI).
//
// It meets its node through the small interfaces of server.go: the
// ledger replica (Read, Watch, Index), the one Writer (leader.Writer: every
// write goes through it), leadership (relay.go), and one service per
// resource (Jobs, Reports, Operator, Health, Keyring, Snapshots, Webhooks,
// Blobs, Logs) that does the work a handler asks for. A log read is
// streamed by its source (a sealed blob, a copy, a relay), so the Logs
// service answers on the response itself; every other service returns
// values and errors, and the handler answers.
//
// Concurrency: a Server is configured once, before Routes, and read-only
// after; its handlers run on the HTTP server's goroutines, one per request,
// and hold no state between requests. The services must be safe for
// concurrent use.
package httpapi
