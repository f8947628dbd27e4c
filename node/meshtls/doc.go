// Package meshtls is the mesh's mutual TLS: a certificate authority, the
// certificates it issues to nodes and to clients, and the listener that
// admits node-to-node connections.
//
// Every node-to-node byte (Raft and the peer HTTP API) travels over one TLS
// 1.3 port per node on which both ends present a certificate signed by the
// mesh CA and carrying the node role (URI SAN "ourci:node:NAME"). A client
// certificate ("ourci:client:NAME", client-auth key usage only) from the
// same CA is refused there: it cannot act as a node. ALPN splits the port
// into its two protocols (ProtoRaft, ProtoHTTP); a connection offering
// neither, or no TLS at all, is closed after a failed handshake.
//
// The CA comes from one of two places. `ourci-node tls ca` makes a random
// one whose key can stay off the nodes; `ourci-node tls cert NODE` then
// issues each node its certificate. For a one-command start the CA is
// derived from the cluster secret (DeriveCA): every holder of the secret
// computes the same CA key, and each node issues itself a fresh
// certificate in memory when it starts. Hostnames are not checked: a peer
// is trusted for holding a node certificate of this CA, whatever address it
// dials from.
//
// Concurrency: CA and Peer are immutable after construction and safe for
// concurrent use. A Mux runs one accept goroutine and one goroutine per
// handshake in progress (bounded by HandshakeTimeout).
package meshtls
