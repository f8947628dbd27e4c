// Package blobs is OurCI's content-addressed artifact store: the blobs one
// node keeps on its own disk, the HTTP serving of them to tasks, clients and
// peers, and the fetching of blobs from peers. It knows nothing of jobs,
// names' owners or the ledger; the daemon (package node) decides who holds
// what, records it, authenticates requests and maps routes onto Serve.
//
// # Names and references
//
// A blob is named by its SHA-256, a Hash: 64 lowercase hex digits, written
// as the reference "sha256:<hex>" (ParseRef also takes the bare hex, in any
// case). Users may give a blob a job-scoped name ("fw.tar.gz",
// "esp8266/fw-ota.tar.gz"); ValidName checks one. Names are keys in the
// ledger and never become paths here, and a valid name is never a valid
// reference, so the two cannot be confused. Only a Hash that passes
// Hash.Valid ever becomes a path, so no name or reference can reach outside
// the store's directory.
//
// # On-disk layout
//
//	dir/sha256/ab/abcdef…   one file per blob, fanned out by its first two hex digits
//	dir/tmp/put-*.tmp       a Put or Stage in progress
//	dir/tmp/<hex>.partial   a Fetch in progress or broken off, kept for resuming
//	dir/running             the marker of a process that has the store open
//
// Open removes everything in dir/tmp except partial files younger than a day.
// Files in dir/sha256 not named like a blob in the right fan-out directory
// are ignored.
//
// # Durability
//
// Put returns once the blob is on stable storage: the temp file is fsynced,
// renamed into place and the directory fsynced. Stage and Fetch return as
// soon as the verified blob is in place and flush it in the background;
// Sync waits for that flush, and a caller calls it before telling anyone
// the copy is safe (the daemon's holder records). The running marker, whose
// modification time is a moment when every earlier write was flushed, is
// removed by Close; found by Open it tells of an unclean stop, and
// VerifyUnflushed re-hashes the blobs written since, deleting torn ones.
//
// # What is verified when
//
//   - Put, Stage and Fetch hash the bytes while they stream into a temp
//     file, and rename it into place only when the hash is right. A wrong
//     hash is ErrHashMismatch and stores nothing. A crash can only tear a
//     Stage or Fetch copy whose flush had not ended, which the first read
//     or VerifyUnflushed finds.
//   - A resumed Fetch re-hashes the partial file's bytes before asking the
//     peer for the rest with a Range request, so the whole blob is always
//     verified.
//   - Store.Open hashes the whole file the first time it opens a version of
//     it (identified by size and mtime) in this process; a mismatch deletes
//     the file and returns ErrCorrupt.
//   - Serve of a full GET hashes the bytes as they are sent and, on a
//     mismatch, deletes the file and aborts the response before its last
//     bytes, so a client never receives a complete wrong body. A Range
//     request is served from a file verified as by Open; HEAD sends no bytes
//     and verifies nothing. ServeToVerifier, for peers that verify what
//     they fetch, skips the hashing of a full GET when the file version was
//     hashed in this process within RecentlyVerified.
//   - Each corruption found is counted (Corruptions) and reported to
//     OnCorrupt, so the daemon can drop its holder record and fetch a good
//     copy again.
//
// Has, Stat, List and Usage look at the files only and verify nothing.
//
// # Concurrency
//
// A Store is safe for concurrent use by many goroutines; set OnCorrupt before
// sharing it. One process should own a directory. Blob files are never
// written in place: concurrent Puts of the same content each write their own
// temp file and the renames replace one identical file with another; readers
// holding a file open keep reading the version they opened, even across
// Delete. Concurrent Fetches of one hash are coalesced into one download.
// Every transfer streams through pooled 1 MiB buffers (one for a read or a
// send; three for a write, whose reading, hashing and writing run as a
// pipeline on their own goroutines), so memory does not grow with blob size.
// A write asks the kernel to start writing its bytes to disk every 16 MiB,
// so the flush at the end has only the tail left.
package blobs
