// Package auth is the mesh's credentials: the cluster secret (32 random
// bytes kept in a 0600 file), everything derived from it by HMAC-SHA256
// under distinct labels (the gossip key, the TLS seed, the mesh ID, the
// cluster token, task tokens, blob capabilities and operator tokens with a
// role and an expiry), and Authenticate, which tells who a bearer token is
// from (a Principal) by its signature alone.
//
// What a principal may do beyond its role (is a task's attempt still live,
// is a blob in its job) is the ledger's to say: the HTTP API checks that.
// TokenPrefixes lists every credential's prefix, for the log masker.
//
// Concurrency: a Secret is an immutable value, safe to share; the
// functions keep no state.
package auth
