package main

import (
	"fmt"
	"os"
)

// runApprove lets a held job (a pull request from a fork) run.
func runApprove(args []string) int {
	fs := newFlagSet("approve", "JOB")
	var cf clientFlags
	cf.register(fs)
	by := fs.String("by", env("USER", ""), "who approves (recorded in the job)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "ourci-node approve: give one JOB")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	d, err := c.Approve(ctx, pos[0], *by)
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("job %s approved: it runs now (%s)\n", d.Job.ID, d.Job.Status)
	return exitOK
}
