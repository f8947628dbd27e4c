// Package api is the wire contract of a node's HTTP API and a Go client
// for it: the request and response bodies, the error body, and Client,
// which the CLI, the daemon's own node-to-node calls and the tests share.
//
// Every response body carries SchemaVersion. Fields are only added, never
// renamed or removed, within one schema version.
//
// Concurrency: a Client is safe for concurrent use.
package api
