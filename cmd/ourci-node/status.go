package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

func runStatus(args []string) int {
	fs := newFlagSet("status", "[--json] [JOB] | --watch [--json] JOB")
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (with schema_version)")
	watch := fs.Bool("watch", false, "redraw JOB's task tree as it changes until the job closes; exit 0 only if it passed")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "ourci-node status: at most one JOB")
		return exitUsage
	}
	if *watch && len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "ourci-node status: --watch needs a JOB")
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
	if *watch {
		tty := isTerminal(os.Stdout)
		w := watcher{out: os.Stdout, tty: tty, pal: palette{on: tty && os.Getenv("NO_COLOR") == ""}, json: *asJSON}
		d, err := w.run(ctx, c, pos[0])
		if err != nil {
			return exitFor(err)
		}
		if d.Job.Status != raftfsm.StatusPassed {
			return exitFailed
		}
		return exitOK
	}
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

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watcher follows one job with the node's blocking query and draws every
// version of it.
type watcher struct {
	out  io.Writer
	tty  bool    // clear the screen before each drawing, and redraw every second
	pal  palette // colours (a terminal without NO_COLOR)
	json bool    // each version as a JSON document instead of the tree
}

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// ttyRefresh is how often a terminal is redrawn while nothing changes, so
// running tasks' durations tick.
const ttyRefresh = time.Second

// run draws the job until it closes and returns its final version. On a
// terminal each drawing replaces the last; elsewhere each new version is
// printed after a blank line.
func (w watcher) run(ctx context.Context, c *api.Client, id string) (api.JobDetail, error) {
	var idx uint64
	wait := 30 * time.Second
	if w.tty {
		wait = ttyRefresh
	}
	for n := 0; ; {
		d, err := c.Job(ctx, id, idx, wait)
		if err != nil {
			return d, err
		}
		if n == 0 || d.Index != idx || (w.tty && !w.json) {
			w.draw(d, n)
			n++
		}
		if d.Job.State == raftfsm.JobClosed {
			return d, nil
		}
		idx = d.Index
	}
}

// draw prints version n (from 0) of the job.
func (w watcher) draw(d api.JobDetail, n int) {
	if w.json {
		enc := json.NewEncoder(w.out)
		enc.SetIndent("", "  ")
		enc.Encode(d)
		return
	}
	switch {
	case w.tty:
		fmt.Fprint(w.out, clearScreen)
	case n > 0:
		fmt.Fprintln(w.out)
	}
	renderJobIn(w.out, d, w.pal)
	fmt.Fprintln(w.out, progress(d))
	if w.tty && d.Job.State != raftfsm.JobClosed {
		fmt.Fprintf(w.out, "watching (ledger index %d, %s) · Ctrl-C to stop\n", d.Index, time.Now().Format(time.TimeOnly))
	}
}
