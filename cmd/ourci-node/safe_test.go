package main

import (
	"strings"
	"testing"

	"github.com/ourci/ourci/node/api"
)

func TestSafeText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ci/all.sh --fast", "ci/all.sh --fast"},
		{"héllo ✓ 日本", "héllo ✓ 日本"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[Hpassed", `\x1b[2J\x1b[Hpassed`},
		{"a\rb\nc\td", `a\x0db\x0ac\x09d`},
		{"\u009b31m", `\u{009b}31m`},
		{"abc\u202edcba", `abc\u{202e}dcba`},
		{"bad \xff byte", `bad \xff byte`},
		{"del\x7f", `del\x7f`},
	} {
		if got := safeText(c.in); got != c.want {
			t.Errorf("safeText(%q): got %q, want %q", c.in, got, c.want)
		}
	}
}

// Everything status prints from the ledger is escaped: a spawn's arguments,
// topic, error and a job's reason cannot drive the operator's terminal.
func TestRenderEscapesLedgerText(t *testing.T) {
	evil := "\x1b]0;pwned\x07\x1b[2J\x1b[Hall tasks passed"
	st := api.Status{Node: "n1", Leader: "n1", Members: []api.Member{{Name: "n1", Topics: []string{"t" + evil}, Unhealthy: evil}},
		Jobs:    []api.JobView{{ID: "j1", Reason: evil, Trigger: evil}},
		Waiting: []api.Waiting{{Task: "t1", Job: "j1", Topic: evil, Reason: evil}},
		Topics:  []api.Topic{{Name: evil, Nodes: []string{"n1"}}}}
	var b strings.Builder
	renderStatus(&b, st)
	d := api.JobDetail{Job: api.JobView{ID: "j1", Reason: evil}, Tasks: []api.TaskView{{ID: "t1", Topic: evil, Args: []string{evil}, Error: evil, Waiting: evil}}}
	renderJob(&b, d)
	if out := b.String(); strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b]0;pwned\x07`) {
		t.Errorf("rendered output: got %q, want escapes shown, not sent", out)
	}
}
