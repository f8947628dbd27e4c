// Package nodetest starts in-process OurCI meshes for tests: N nodes on
// 127.0.0.1 with ports the kernel picks, data directories under
// t.TempDir(), and cleanup when the test ends.
//
// Every wait has a deadline (scaled by OURCI_TEST_TIMEOUT_SCALE, see
// package wait) and fails the test with what it was waiting for. Helpers
// call t.Fatalf only from the test's goroutine. StartFaulty's meshes can
// be partitioned in-process (package faults).
//
// Concurrency: a Mesh is driven from the test's goroutine.
package nodetest
