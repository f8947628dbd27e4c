package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ourci/ourci/node/api"
)

// sectionsHelp is the marker convention, for logs -h.
const sectionsHelp = `
sections (--sections): a task marks parts of its log with lines of either
convention, which the web UI and --sections show with their line ranges and
durations once the attempt has ended:

  echo '::group::Build'                 GitHub Actions style: a new group
  echo '::endgroup::'                   closes the open one (not nested)

  printf '\033[0Ksection_start:%s:build[collapsed=true]\r\033[0KBuild\n' "$(date +%s)"
  printf '\033[0Ksection_end:%s:build\r\033[0K\n' "$(date +%s)"
                                        GitLab style: nested, closed by name

A marker starts its line (after escape sequences); [collapsed=true] and the
title after \r\033[0K are optional. Times are the lines' arrival at the
node, not the markers' timestamps. At most 10000 sections a log; names and
titles are cut to 200 bytes.
`

func runLogs(args []string) int {
	cmd := newClientCommand("logs", "TASK", "[-f] [--attempt N] [--tail N] [--timestamps] TASK | --sections [--json] [--attempt N] TASK")
	follow := cmd.fs.Bool("f", false, "follow the output until the task ends")
	attempt := cmd.fs.Int("attempt", 0, "read this attempt's log (default: the current attempt)")
	tail := cmd.fs.Int("tail", 0, "only the last N lines")
	stamps := cmd.fs.Bool("timestamps", false, "start each line with its arrival time (RFC 3339, UTC)")
	sections := cmd.fs.Bool("sections", false, "list the sections the task marked in its log (once the attempt has ended; see below)")
	asJSON := cmd.fs.Bool("json", false, "with --sections: print the answer as JSON (with schema_version)")
	usage := cmd.fs.Usage
	cmd.fs.Usage = func() {
		usage()
		io.WriteString(cmd.fs.Output(), sectionsHelp)
	}
	task, c, code := cmd.parse(args)
	if code != exitOK {
		return code
	}
	switch {
	case *asJSON && !*sections:
		fmt.Fprintln(os.Stderr, "ourci-node logs: --json goes with --sections (the log itself is the task's own text)")
		return exitUsage
	case *sections && (*follow || *tail > 0 || *stamps):
		fmt.Fprintln(os.Stderr, "ourci-node logs: --sections lists a finished attempt's sections: it does not go with -f, --tail or --timestamps")
		return exitUsage
	}
	ctx, stop := signalContext()
	defer stop()
	if *sections {
		s, err := c.LogSections(ctx, task, *attempt)
		if err != nil {
			return exitFor(err)
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(s)
			return exitOK
		}
		renderSections(os.Stdout, s)
		return exitOK
	}
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

// renderSections prints a log's sections as a table, nested ones
// indented (names escaped: the task wrote them, safe.go).
func renderSections(w io.Writer, s api.LogSections) {
	fmt.Fprintf(w, "task %s attempt %d: %d sections in %d lines\n", safeText(s.Task), s.Attempt, len(s.Sections), s.Lines)
	if len(s.Sections) == 0 {
		fmt.Fprintln(w, "(no section markers: see ourci-node logs -h)")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tLINES\tSTART\tDURATION")
	for _, sc := range s.Sections {
		name := sc.Name
		if name == "" {
			name = "(unnamed)"
		}
		name = strings.Repeat("  ", min(sc.Depth, 20)) + safeText(name)
		if sc.Title != "" && sc.Title != sc.Name {
			name += ": " + safeText(sc.Title)
		}
		dur := sc.Duration().Round(time.Millisecond).String()
		if sc.Open {
			dur += " (not closed)"
		}
		fmt.Fprintf(tw, "%s\t%d-%d\t%s\t%s\n", name, sc.FirstLine, sc.LastLine, sc.Start.UTC().Format("2006-01-02T15:04:05.000Z"), dur)
	}
	tw.Flush()
	if s.Truncated {
		fmt.Fprintln(w, "(the log marks more sections: only the first 10000 are kept)")
	}
}
