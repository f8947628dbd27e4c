// Command ourci-node runs a node of the OurCI mesh (join), a local demo
// mesh (demo), and the client commands that talk to a node's API (spawn,
// status, logs, cancel, keygen).
//
// Flags fall back to OURCI_* environment variables; client commands find
// their node through --node or $OURCI_NODE and authenticate with
// $OURCI_TOKEN (set inside tasks), --token-file, or the cluster secret.
// Exit codes are the same for every command: see common.go.
package main
