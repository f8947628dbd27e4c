package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ourci/ourci/node/api"
)

func runLogs(args []string) int {
	cmd := newClientCommand("logs", "TASK", "[-f] [--attempt N] [--tail N] [--timestamps] TASK")
	follow := cmd.fs.Bool("f", false, "follow the output until the task ends")
	attempt := cmd.fs.Int("attempt", 0, "read this attempt's log (default: the current attempt)")
	tail := cmd.fs.Int("tail", 0, "only the last N lines")
	stamps := cmd.fs.Bool("timestamps", false, "start each line with its arrival time (RFC 3339, UTC)")
	task, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	rc, err := c.LogOf(ctx, task, api.LogOptions{Follow: *follow, Attempt: *attempt, Tail: *tail, Timestamps: *stamps})
	if err != nil {
		return exitFor(err)
	}
	defer rc.Close()
	if _, err := io.Copy(os.Stdout, rc); err != nil && ctx.Err() == nil {
		return exitFor(fmt.Errorf("log stream broke: %w", err))
	}
	return exitOK
}
