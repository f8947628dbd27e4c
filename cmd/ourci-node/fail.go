package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ourci/ourci/node/runner"
)

// runFail: ourci-node fail --infra REASON, inside a task: the attempt ends
// infra_failed with REASON (not failed: the code was not at fault) and the
// mesh retries it on another node of its topic. It prints the marker line
// the runner reads and exits 75 (EX_TEMPFAIL); a script calls it as its
// last command, or exits 75 itself after printing the line.
func runFail(args []string) int {
	fs := newFlagSet("fail", "--infra REASON")
	infra := fs.String("infra", "", "why the infrastructure failed (a board that did not answer, a dead USB hub); the attempt is retried elsewhere")
	rest, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	reason := strings.TrimSpace(strings.Join(append([]string{*infra}, rest...), " "))
	if *infra == "" || reason == "" {
		fmt.Fprintln(os.Stderr, "ourci-node fail: say why: ourci-node fail --infra \"the board did not answer on /dev/ttyUSB0\"")
		return exitUsage
	}
	reason = strings.Join(strings.Fields(reason), " ") // one line
	if os.Getenv("OURCI_TASK") == "" {
		fmt.Fprintln(os.Stderr, "ourci-node fail: not inside a task (no $OURCI_TASK): it ends the running attempt of a task, and only there")
	}
	fmt.Printf("%s%s\n", runner.InfraMarker, reason)
	return runner.InfraExitCode
}
