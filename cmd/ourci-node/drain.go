package main

import (
	"fmt"
	"os"
	"time"
)

// runDrain asks a node to leave the mesh gracefully: no new tasks, running
// ones finish, leadership and its Raft vote are handed over, then it stops.
func runDrain(args []string) int {
	fs := newFlagSet("drain", "[--node URL]")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	ctx, stop := signalContext()
	defer stop()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "draining %s: waiting for its running tasks to finish\n", cf.node)
	name, err := c.Drain(ctx)
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("node %s drained and left the mesh after %s\n", name, time.Since(start).Round(time.Millisecond))
	return exitOK
}
