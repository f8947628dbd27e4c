// Package mask hides credentials in a task's output before it reaches the
// task's log: a Writer masks the values it is given (the task's token, its
// blob capability and BLOB_URL, the topic's secrets) in every form it
// knows (as is, any case, percent-encoded, hex, base64 at any alignment,
// wrapped, split by ANSI escapes), and anything shaped like an OurCI
// credential (auth.TokenPrefixes), replacing each with Text.
//
// A credential may be split across writes: a tail that could still become
// one is held back until the next Write or Close decides, never more than
// the longest form can span.
//
// Concurrency: a Writer's methods are safe for concurrent use (one mutex);
// writes reach the underlying writer in order.
package mask
