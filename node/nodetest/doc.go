// Package nodetest starts in-process OurCI meshes for tests: N nodes on
// 127.0.0.1, data directories under t.TempDir(), and cleanup when the
// test ends. Each node's ports are reserved for the mesh's life (package
// ports: outside the kernel's ephemeral range, locked across processes),
// so a node stopped or killed comes back on the same addresses: Restart
// with Config(i). StartNode, which Add and Restart use, waits out a port
// some other socket holds for a moment and names the holder if it stays.
//
// Every wait has a deadline (scaled by OURCI_TEST_TIMEOUT_SCALE, see
// package wait) and fails the test with what it was waiting for. Helpers
// call t.Fatalf only from the test's goroutine. StartFaulty's meshes can
// be partitioned in-process (package faults).
//
// Concurrency: a Mesh is driven from the test's goroutine.
package nodetest
