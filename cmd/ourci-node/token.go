package main

import (
	"fmt"
	"os"
	"time"
)

// runToken prints the full-access API token derived from the cluster
// secret, for scripts and HTTP clients (Authorization: Bearer TOKEN);
// `token create --role read|operate|metrics [--ttl D]` makes a narrower one.
func runToken(args []string) int {
	if len(args) > 0 && args[0] == "create" {
		return runTokenCreate(args[1:])
	}
	fs := newFlagSet("token", "[--secret-file F] | create --role read|operate|metrics [--ttl DURATION]")
	secretFile := fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	s, err := loadSecret(*secretFile)
	if err != nil {
		return exitFor(err)
	}
	fmt.Fprintln(os.Stdout, s.ClusterToken())
	return exitOK
}

func runTokenCreate(args []string) int {
	fs := newFlagSet("token create", "--role read|operate|metrics [--ttl DURATION]")
	secretFile := fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
	role := fs.String("role", "", "read: status, jobs, logs, blobs, the web UI; operate: also spawn, cancel, approve, blob put; metrics: scrape /metrics (Prometheus), nothing else")
	ttl := fs.Duration("ttl", 0, "the token expires after this long (default: never; revoke by changing the cluster secret)")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	s, err := loadSecret(*secretFile)
	if err != nil {
		return exitFor(err)
	}
	var exp time.Time
	if *ttl > 0 {
		exp = time.Now().Add(*ttl)
	}
	tok, err := s.OperatorToken(*role, exp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ourci-node token create: --role %q: give read (status, jobs, logs, blobs, the web UI), operate (also spawn, cancel, approve, blob put) or metrics (scrape /metrics, for Prometheus)\n", *role)
		return exitUsage
	}
	fmt.Fprintln(os.Stdout, tok)
	return exitOK
}
