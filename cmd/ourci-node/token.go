package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ourci/ourci/node"
)

// runToken prints the full-access API token derived from the cluster
// secret, for scripts and HTTP clients (Authorization: Bearer TOKEN).
func runToken(args []string) int {
	fs := newFlagSet("token", "[--secret-file F]")
	secretFile := fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	path := *secretFile
	if path == "" {
		path = filepath.Join(homeDir(), "cluster.secret")
	}
	s, err := node.LoadSecret(path)
	if err != nil {
		return exitFor(err)
	}
	fmt.Fprintln(os.Stdout, s.ClusterToken())
	return exitOK
}
