package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func runStatus(args []string) int {
	fs := newFlagSet("status", "[--json] [JOB]")
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (with schema_version)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "ourci-node status: at most one JOB")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if len(pos) == 1 {
		d, err := c.Job(ctx, pos[0], 0, 0)
		if err != nil {
			return exitFor(err)
		}
		if *asJSON {
			enc.Encode(d)
		} else {
			renderJob(os.Stdout, d)
		}
		return exitOK
	}
	st, err := c.Status(ctx)
	if err != nil {
		return exitFor(err)
	}
	if *asJSON {
		enc.Encode(st)
	} else {
		renderStatus(os.Stdout, st)
	}
	return exitOK
}
