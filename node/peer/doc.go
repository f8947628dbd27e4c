// Package peer is the typed client one node uses to call another over the
// mesh's peer port: mutual TLS (the transport the node builds from its
// mesh certificate) and the cluster token on every request. It knows the
// internal routes (reports, blob pulls, leave, health and index, log
// chunks and log relay) and the leader's address, and nothing of the node
// around it: the node gives it an *http.Client and a Directory.
//
// Errors: a peer's refusal is an *AnswerError with the answer's status and
// the API error's code and message (errors.As), except for Report, which
// goes through the API client and answers an *api.StatusError;
// ErrNoLeader when no leader is known within the wait. Messages start with
// "peer:".
//
// Concurrency: a Client is safe for concurrent use once built; its fields
// are not changed after.
package peer
