package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ourci/ourci/node/api"
)

// runListPeers: operator raft list-peers [--json].
func runListPeers(args []string) int {
	fs := newFlagSet("operator raft list-peers", "[--json] [--node URL]")
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the configuration as JSON (with schema_version)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 {
		fmt.Fprintln(os.Stderr, "ourci-node operator raft list-peers: takes no arguments")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	peers, err := c.RaftPeers(ctx)
	if err != nil {
		return exitFor(&cliError{msg: "operator raft list-peers: " + apiMessage(c.Base, err), err: err})
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(peers)
		return exitOK
	}
	renderPeers(os.Stdout, peers)
	return exitOK
}

func renderPeers(w *os.File, p api.RaftPeers) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT ID\tADDRESS\tSUFFRAGE\tSTATE")
	for _, pr := range p.Peers {
		var st []string
		switch {
		case pr.Leader:
			st = append(st, "leader")
		case pr.Alive:
			st = append(st, "alive")
		case pr.Stale:
			st = append(st, "stale (the name came back with a new data directory)")
		default:
			st = append(st, "DEAD")
		}
		if pr.Unhealthy != "" {
			st = append(st, "unhealthy: "+safeText(pr.Unhealthy))
		}
		if pr.NoVote {
			st = append(st, "--voter=never")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", safeText(pr.Name), safeText(pr.ID), safeText(pr.Address), pr.Suffrage, strings.Join(st, ", "))
	}
	tw.Flush()
	q := p.Quorum
	fmt.Fprintf(w, "\nquorum: %d of %d voters alive, %d needed, %d more may fail\n", q.Alive, q.Voters, q.Needed, max(q.Tolerates, 0))
	if q.Warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n", q.Warning)
	}
}

// runRemovePeer: operator raft remove-peer NAME | --id ID.
func runRemovePeer(args []string) int {
	cmd := newClientCommand("operator raft remove-peer", "NAME (or a Raft ID with --id)", "NAME | --id ID [--json] [--node URL]")
	byID := cmd.fs.Bool("id", false, "the argument is one Raft server ID (from list-peers), not a node name")
	asJSON := cmd.fs.Bool("json", false, "print {schema_version, removed}")
	name, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	out, err := c.RemovePeer(ctx, name, *byID)
	if err != nil {
		return exitFor(&cliError{msg: "operator raft remove-peer: " + apiMessage(c.Base, err), err: err})
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(out)
		return exitOK
	}
	for _, id := range out.Removed {
		fmt.Printf("removed %s from the Raft configuration\n", id)
	}
	return exitOK
}
