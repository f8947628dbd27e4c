// Package tasklog keeps each attempt's output on the node that runs it,
// in DIR/TASK/ATTEMPT.log, and lets readers follow an attempt while it
// runs (Stream with follow).
//
// A Log never fails the task's writes (a task blocked on a pipe nobody
// reads would hang): past the store's cap it drops output behind a marker
// line, and once a write to the disk failed it drops everything, records
// the error and closes Failed, so the runner stops the attempt as an
// infrastructure failure. A log is never truncated: an attempt that runs
// again on the node adds to it behind a marker.
//
// Concurrency: a Store and its Logs are safe for concurrent use; Note and
// Write may interleave from several goroutines, each line whole.
package tasklog
