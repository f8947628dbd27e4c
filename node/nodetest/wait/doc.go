// Package wait is the one way OurCI's tests wait for a condition: For
// polls it with a short backoff (5 ms, doubling to 200 ms) until it holds
// or a deadline passes, and then fails the test with the deadline, what
// was awaited and the condition's last word on why it did not hold.
//
// Every timeout goes through Scale, which multiplies it by the float in
// the environment variable OURCI_TEST_TIMEOUT_SCALE (default 1). On a slow
// or loaded machine (a shared CI runner, -race, a laptop on battery) set
// it, e.g. OURCI_TEST_TIMEOUT_SCALE=3 go test ./...; a value that is not a
// positive number fails the test that reads it (Scale, which has no test
// to fail, panics) rather than being ignored.
//
// The package imports nothing of OurCI, so every package's tests can use
// it, internal ones included (gossip's tests cannot import node/nodetest).
// For calls t.Fatalf and so must run on the test's goroutine.
package wait
