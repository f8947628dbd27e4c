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
//
// So that a log outlives its node (issue 17), the package also has the
// log's formats away from it, without networking or the ledger: a Writer
// splits output into lines timed by their arrival; a Chunker cuts a
// running attempt's output into Chunks (at 64 KiB or 1 s) for other
// nodes, where a Replica applies them in order (and Log.Rechunk cuts any
// of them again from the log's file, given its ChunkBounds, for a copy
// that lost or missed it); Seal makes the whole
// stream one blob (format version 1: zstd frames of about 256 KiB, an
// index, a footer; the layout is in format.go) whose SHA-256 the ledger
// records, and Sealed serves it in place: totals, byte ranges, the tail,
// lines with their times, a raw download, a Scan of every line a frame at
// a time. Sections parses the section markers of a log's lines (GitHub
// Actions' ::group:: and GitLab's section_start:, sections.go) into
// sections timed by their lines' arrival (issue 19). Chunker, Replica and
// Sealed are safe for concurrent use; a Writer, a Chunk and Sections are
// not.
package tasklog
