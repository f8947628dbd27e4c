package main

import (
	"fmt"
	"os"
)

func runCancel(args []string) int {
	fs := newFlagSet("cancel", "JOB")
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "ourci-node cancel: give one JOB")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	d, err := c.Cancel(ctx, pos[0])
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("job %s %s (%s)\n", d.Job.ID, d.Job.State, d.Job.Status)
	return exitOK
}
