// Package github is OurCI's side of GitHub: it verifies and decodes webhook
// deliveries, decides which of them open a job, posts commit statuses or
// check runs back through the GitHub REST API (go-github v60), as a token
// or as a GitHub App, and tells a commit's author
// when a job failed or recovered (outgoing JSON webhook and/or e-mail).
//
// It holds no state of its own and knows nothing of the ledger: the daemon
// (package node) records deliveries, jobs and acknowledged statuses in the
// ledger and calls in here for the GitHub-facing work.
//
// Files:
//
//   - verify.go: Verify (X-Hub-Signature-256), ReadDelivery (size limit,
//     verify, parse) and HTTPStatus for the webhook route.
//   - event.go, payload.go: Event and Parse; trigger.go: Trigger.
//   - statuses.go, retry.go: Statuses (CreateStatus, GetCommit) with
//     backoff and rate-limit handling.
//   - token.go: LoadToken; the token never reaches an error or a log line.
//   - app.go: App (GitHub App authentication: app JWT, installation
//     tokens per repository, cached until 5 minutes before they expire,
//     renewed on 401), LoadAppKey, NewAppStatuses.
//   - checks.go: Checks (check runs: create, find by external_id, update
//     with annotations 50 a request), LogAnnotations; summary.go: Report
//     and its markdown.
//   - event.go also parses check_run, check_suite and merge_group
//     (payload.go); testdata holds GitHub's published examples, trimmed.
//   - notify.go, mail.go: Notifier and the e-mail it sends.
//   - githubtest: a local stand-in for the GitHub API, a tiny SMTP server,
//     webhook payload builders and signing, for tests here and in e2e.
//
// Order of trust: a webhook body is verified (HMAC-SHA256 over the raw
// bytes, constant-time compare) before any byte of it is parsed, and is
// never read past MaxBody.
//
// Concurrency: Verify, Parse and Trigger are pure functions. A *Statuses
// and a *Notifier are safe for concurrent use once configured: their
// fields are read, never written, by their methods (set fields before the
// first call, not during). Every method that waits takes a context and
// returns promptly once it is done; retries sleep through the injectable
// Sleep, so tests never wait on a real clock except where go-github itself
// remembers a rate limit.
package github
