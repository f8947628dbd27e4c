package main

import (
	"testing"

	"github.com/ourci/ourci/node/runner"
)

// TestFailInfra: `ourci-node fail --infra REASON` prints the marker line
// the runner reads, the reason on one line, and exits 75; without a
// reason it is a usage error that says what to give.
func TestFailInfra(t *testing.T) {
	t.Setenv("OURCI_TASK", "t1")
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"fail", "--infra", "board did not answer\non ttyUSB0"}, runner.InfraExitCode, runner.InfraMarker + "board did not answer on ttyUSB0\n"},
		{[]string{"fail", "--infra", "hub", "reset", "failed"}, runner.InfraExitCode, runner.InfraMarker + "hub reset failed\n"},
		{[]string{"fail"}, exitUsage, ""},
		{[]string{"fail", "--infra", "  "}, exitUsage, ""},
	}
	for _, c := range cases {
		code, out := runCaptured(t, c.args...)
		if code != c.code || out != c.out {
			t.Errorf("%q: got %d %q, want %d %q", c.args, code, out, c.code, c.out)
		}
	}
}
