// Package clock lets the daemon's timeouts and deadlines run on an
// injectable clock: the real one in production, a manual one in tests.
//
// Concurrency: both implementations are safe for concurrent use.
//
// Concurrency: Real and Manual are safe for concurrent use; Manual fires
// its timers only when the test calls Advance.
package clock
