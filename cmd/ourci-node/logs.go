package main

import (
	"fmt"
	"io"
	"os"
)

func runLogs(args []string) int {
	fs := newFlagSet("logs", "[-f] TASK")
	var cf clientFlags
	cf.register(fs)
	follow := fs.Bool("f", false, "follow the output until the task ends")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "ourci-node logs: give one TASK")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	rc, err := c.Log(ctx, pos[0], *follow)
	if err != nil {
		return exitFor(err)
	}
	defer rc.Close()
	if _, err := io.Copy(os.Stdout, rc); err != nil && ctx.Err() == nil {
		return exitFor(fmt.Errorf("log stream broke: %w", err))
	}
	return exitOK
}
