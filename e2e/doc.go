// Package e2e starts real ourci-node processes on 127.0.0.1 and checks what a
// user of the CLI sees. TestMain builds the binary once per run.
//
// Concurrency: each test starts its own processes on ports of its own and
// stops them in cleanup, so tests may run in parallel (t.Parallel).
package e2e
