package main

import (
	"fmt"
	"io"
	"os"
)

func runLogs(args []string) int {
	cmd := newClientCommand("logs", "TASK", "[-f] TASK")
	follow := cmd.fs.Bool("f", false, "follow the output until the task ends")
	task, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	rc, err := c.Log(ctx, task, *follow)
	if err != nil {
		return exitFor(err)
	}
	defer rc.Close()
	if _, err := io.Copy(os.Stdout, rc); err != nil && ctx.Err() == nil {
		return exitFor(fmt.Errorf("log stream broke: %w", err))
	}
	return exitOK
}
