// Package githubtest stands in for GitHub in tests (here and in e2e):
//
//   - Server: a local GitHub REST API (httptest) that records every commit
//     status posted to it, serves commits with a configurable author
//     e-mail, and can be told to fail or rate-limit the next requests;
//   - SMTPServer: a tiny SMTP server on 127.0.0.1 that speaks enough of the
//     protocol for net/smtp and records the messages it receives;
//   - PullRequest, Push, Ping: webhook bodies shaped like GitHub's
//     documented payloads; Sign and NewWebhookRequest to deliver them as
//     GitHub does.
//
// Everything here is safe for concurrent use. Nothing here is for
// production.
package githubtest
