package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/ourci/ourci/node/api"
)

// runRig: ourci-node rig list | quarantine NODE TOPIC --reason TEXT |
// release NODE TOPIC. A rig is one node serving one topic; a quarantined
// rig gets no new task of that topic (docs/RIGS.md).
func runRig(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: ourci-node rig list [--json]\n       ourci-node rig quarantine NODE TOPIC --reason TEXT\n       ourci-node rig release NODE TOPIC")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "list":
		return rigList(args[1:])
	case "quarantine", "release":
		return rigChange(args[0], args[1:])
	}
	fmt.Fprintf(os.Stderr, "ourci-node rig: unknown subcommand %q: want list, quarantine or release\n", args[0])
	return exitUsage
}

func rigList(args []string) int {
	cmd := newClientCommand("rig list", "", "[--json]")
	asJSON := cmd.fs.Bool("json", false, "print {schema_version, rigs} as JSON")
	_, c, code := cmd.parseN(args, 0, "takes no arguments", nil)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	rigs, err := c.Rigs(ctx)
	if err != nil {
		return exitFor(err)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(rigs)
		return exitOK
	}
	if len(rigs.Rigs) == 0 {
		fmt.Println("no rig has had an infrastructure failure or a quarantine yet: every node serves its topics")
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tTOPIC\tSTATE\tINFRA FAILURES IN A ROW\tSINCE\tBY\tREASON")
	for _, r := range rigs.Rigs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", safeText(r.Node), safeText(r.Topic), rigState(r), r.InfraStreak, since(r.Since), safeText(r.By), safeText(r.Reason))
	}
	tw.Flush()
	return exitOK
}

func rigState(r api.Rig) string {
	if r.Quarantined {
		return "quarantined"
	}
	return "serving"
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func rigChange(op string, args []string) int {
	usage := "NODE TOPIC"
	if op == "quarantine" {
		usage += " --reason TEXT"
	}
	cmd := newClientCommand("rig "+op, "", usage)
	reason := cmd.fs.String("reason", "", "why it is out of service (shown wherever the rig is; required)")
	pos, c, code := cmd.parseN(args, 2, "give NODE and TOPIC (ourci-node rig list shows them)", func() error {
		if op == "quarantine" && *reason == "" {
			return errors.New(`say why with --reason TEXT, e.g. --reason "USB hub replaced, board untested"`)
		}
		return nil
	})
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	var r api.Rig
	var err error
	if op == "quarantine" {
		r, err = c.Quarantine(ctx, pos[0], pos[1], *reason)
	} else {
		r, err = c.Release(ctx, pos[0], pos[1])
	}
	if err != nil {
		return exitFor(err)
	}
	if r.Quarantined {
		fmt.Printf("%s is quarantined for %s: it gets no new %s task until ourci-node rig release %s %s\n", safeText(r.Node), safeText(r.Topic), safeText(r.Topic), safeText(r.Node), safeText(r.Topic))
	} else {
		fmt.Printf("%s serves %s again\n", safeText(r.Node), safeText(r.Topic))
	}
	return exitOK
}
