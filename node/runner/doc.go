// Package runner runs the task attempts the local ledger replica assigns
// to this node, and stops those the ledger takes away.
//
// It learns its work only from its own replica (Ledger: Read and Watch),
// never by polling the leader, and starts nothing before the node says the
// replica has caught up with the mesh (Run's ready channel): a replica
// still re-applying its log shows long-finished tasks as assigned. It
// tells the mesh what happened through a Reporter (the node's one write
// path: the leader's dispatcher, or the leader's API from a follower), and
// asks its node for the rest through narrow interfaces declared here
// (Host, Metrics, Sources). Each attempt gets a workspace, a task log
// (node/tasklog) behind a masker (node/mask), an environment (env.go) and
// a run record (records.go) that a later life of the node reads after a
// crash, so that it hands an attempt back instead of running it twice.
//
// Concurrency: a Runner is safe for concurrent use. Run's loop is the only
// caller of scan; each attempt runs in a goroutine of its own, tracked by
// the Runner's wait group, and ends when its process ends, its context is
// cancelled (the node stops) or the ledger takes it away. Reports are
// retried with backoff until applied, refused (ErrRefused) or the node
// stops.
package runner
