package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// recovered is `operator raft recover --json`.
type recovered struct {
	SchemaVersion int `json:"schema_version"`
	raftfsm.Recovery
}

// runRaftRecover: operator raft recover, on a stopped node whose mesh lost
// its quorum for good.
func runRaftRecover(args []string) int {
	fs := newFlagSet("operator raft recover", "[--data-dir DIR] [--name NAME] [--voter NAME]... [--json]")
	host, _ := os.Hostname()
	dataDir := fs.String("data-dir", homeDir(), "the stopped node's data directory (env OURCI_DATA_DIR)")
	name := fs.String("name", env("OURCI_NAME", host), "the node's name, its Raft ID when the data directory has no node-id file (env OURCI_NAME)")
	asJSON := fs.Bool("json", false, "print {schema_version, node, before, after, index}")
	var voters listFlag
	fs.Var(&voters, "voter", "a surviving node to keep as a voter, by name or Raft ID (repeatable; default: this node alone)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(os.Stderr, "ourci-node operator raft recover: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	id, err := raftfsm.NodeID(*dataDir, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node operator raft recover:", strings.TrimPrefix(err.Error(), "raftfsm: "))
		return exitError
	}
	rec, err := raftfsm.Recover(*dataDir, id, voters)
	switch {
	case errors.Is(err, raftfsm.ErrInUse):
		fmt.Fprintf(os.Stderr, "ourci-node operator raft recover: the node is running on %s (its raft.db is locked): stop it first; recover works on a stopped node. Nothing was changed.\n", *dataDir)
		return exitError
	case errors.Is(err, raftfsm.ErrDamaged):
		msg, _ := dataDirMessage(err)
		fmt.Fprintln(os.Stderr, "ourci-node operator raft recover:", msg)
		return exitError
	case errors.Is(err, raftfsm.ErrRecover):
		fmt.Fprintf(os.Stderr, "ourci-node operator raft recover: %s. Nothing was changed.\n", strings.TrimPrefix(err.Error(), raftfsm.ErrRecover.Error()+": "))
		return exitUsage
	case err != nil:
		fmt.Fprintf(os.Stderr, "ourci-node operator raft recover: %v\n", err)
		return exitError
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(recovered{SchemaVersion: api.SchemaVersion, Recovery: rec})
		return exitOK
	}
	fmt.Printf("recovered the Raft configuration of %s in %s; its ledger, up to index %d, is kept.\n", rec.Node, *dataDir, rec.Index)
	fmt.Printf("  before: %s\n  now:    %s\n", serverList(rec.Before), serverList(rec.After))
	if len(rec.After) > 1 {
		fmt.Println("Run the same command, with the same --voter flags, on every other node named (all stopped), then start them all.")
	}
	fmt.Println("Start the node again as before (ourci-node join ... on this data directory, with the same --raft port);")
	fmt.Println("it then elects a leader without the lost nodes. New nodes join it with --peer.")
	return exitOK
}

func serverList(ss []raftfsm.Server) string {
	var out []string
	for _, s := range ss {
		role := "voter"
		if !s.Voter {
			role = "non-voter"
		}
		out = append(out, fmt.Sprintf("%s (%s, %s)", s.ID, role, s.Address))
	}
	return strings.Join(out, ", ")
}
