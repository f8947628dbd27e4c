package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/raftfsm"
)

// runVersion: ourci-node version [--json] (also ourci-node --version).
func runVersion(args []string) int {
	fs := newFlagSet("version", "[--json]")
	asJSON := fs.Bool("json", false, "print {schema_version, version, ledger_schema, go} as JSON")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{
			"schema_version": 1, "version": node.Version(), "ledger_schema": raftfsm.LedgerSchema, "go": runtime.Version(),
		})
		return exitOK
	}
	fmt.Printf("ourci-node %s (ledger schema %d, %s)\n", node.Version(), raftfsm.LedgerSchema, runtime.Version())
	return exitOK
}
