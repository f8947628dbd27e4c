// Package lograte throttles log lines that outsiders can cause (a bad
// gossip packet, a refused connection): at most one line per source per
// interval, the next one carrying how many were suppressed in between, so
// a flood costs a few lines instead of one per packet.
//
// Concurrency: a Limiter is safe for concurrent use; its zero value is
// ready.
package lograte
