package main

import "fmt"

// runApprove lets a held job (a pull request from a fork) run.
func runApprove(args []string) int {
	cmd := newClientCommand("approve", "JOB", "JOB [--by NAME]")
	by := cmd.fs.String("by", env("USER", ""), "who approves (recorded in the job)")
	job, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	d, err := c.Approve(ctx, job, *by)
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("job %s approved: it runs now (%s)\n", d.Job.ID, d.Job.Status)
	return exitOK
}
