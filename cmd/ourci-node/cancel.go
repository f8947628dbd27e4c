package main

import "fmt"

func runCancel(args []string) int {
	cmd := newClientCommand("cancel", "JOB", "JOB")
	job, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	d, err := c.Cancel(ctx, job)
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("job %s %s (%s)\n", d.Job.ID, d.Job.State, d.Job.Status)
	return exitOK
}
