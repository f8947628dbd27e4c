package node_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/raftfsm"
)

// attemptOn waits until a fake starts attempt of task and returns it and
// the index of its node.
func attemptOn(t *testing.T, fakes []*executor.Fake, task string, attempt int) (*executor.FakeProcess, int) {
	t.Helper()
	var proc *executor.FakeProcess
	at := -1
	nodetest.WaitFor(t, waitLong, fmt.Sprintf("task %s attempt %d started on a fake executor", task, attempt), func() (bool, string) {
		for i, f := range fakes {
			for _, p := range f.Procs() {
				if specEnv(p.Spec, "OURCI_TASK") == task && specEnv(p.Spec, "OURCI_ATTEMPT") == strconv.Itoa(attempt) {
					proc, at = p, i
					return true, ""
				}
			}
		}
		return false, "no fake process has it"
	})
	return proc, at
}

// TestInfraFailuresQuarantineARig: a rig whose board does not answer
// (its task prints the reason and exits 75, as `ourci-node fail --infra`
// does) has each attempt retried on the other rig, where the job passes
// with the cause on the task; three such failures in a row quarantine
// it for the topic (in the ledger, with the reason), and new tasks go to
// the other rig only. With every rig quarantined a task waits and says
// so; releasing one lets it run there.
func TestInfraFailuresQuarantineARig(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("flash") })
	c := m.Client(0)
	ctx := testCtx(t)
	bad, good := m.Nodes[0].Name(), m.Nodes[1].Name()

	infra := 0
	for k := 0; infra < 3; k++ {
		if k == 12 {
			t.Fatalf("after %d jobs only %d attempts ran on %s: the picker should prefer it while both are idle", k, infra, bad)
		}
		sp := spawn(t, c, "flash", "flash.sh")
		p, at := attemptOn(t, fakes, sp.Task, 1)
		if at == 1 {
			p.Finish(0)
			waitTask(t, c, sp.Job, sp.Task, "passed")
			continue
		}
		infra++
		fmt.Fprintf(p.Spec.Output, "flashing\n%sno answer on /dev/ttyUSB0 (try %d)\n", runner.InfraMarker, infra)
		p.Finish(runner.InfraExitCode)
		p2, at2 := attemptOn(t, fakes, sp.Task, 2)
		if at2 != 1 {
			t.Fatalf("task %s attempt 2: got it on node %d, want it on the other rig %s", sp.Task, at2, good)
		}
		p2.Finish(0)
		tv := waitTask(t, c, sp.Job, sp.Task, "passed")
		if want := fmt.Sprintf("no answer on /dev/ttyUSB0 (try %d)", infra); tv.InfraRetries != 1 || !strings.Contains(tv.InfraError, want) {
			t.Errorf("task %s: got %d infra retries, cause %q; want 1 and %q", sp.Task, tv.InfraRetries, tv.InfraError, want)
		}
	}

	rig := func(node string) api.Rig {
		rs, err := c.Rigs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs.Rigs {
			if r.Node == node && r.Topic == "flash" {
				return r
			}
		}
		return api.Rig{}
	}
	nodetest.WaitFor(t, waitLong, bad+" quarantined for flash", func() (bool, string) {
		r := rig(bad)
		return r.Quarantined, fmt.Sprintf("%+v", r)
	})
	if r := rig(bad); r.By != "auto" || !strings.Contains(r.Reason, "3 infrastructure failures in a row") || !strings.Contains(r.Reason, "try 3") {
		t.Errorf("the quarantine: got %+v, want it by auto, saying 3 failures in a row and the last cause", r)
	}

	// New work goes to the good rig only, though the picker prefers the
	// quarantined one when both are idle.
	for range 3 {
		sp := spawn(t, c, "flash", "flash.sh")
		p, at := attemptOn(t, fakes, sp.Task, 1)
		if at != 1 {
			t.Fatalf("task %s: got it on quarantined %s, want it on %s", sp.Task, bad, good)
		}
		p.Finish(0)
		waitTask(t, c, sp.Job, sp.Task, "passed")
	}

	// Every rig out of service: a task waits, and says why.
	if _, err := c.Quarantine(ctx, good, "flash", "bench power supply replaced"); err != nil {
		t.Fatal(err)
	}
	sp := spawn(t, c, "flash", "flash.sh")
	nodetest.WaitFor(t, waitLong, "the waiting task to say every rig is quarantined", func() (bool, string) {
		d := job(t, c, sp.Job)
		tv, _ := task(d, sp.Task)
		return strings.Contains(tv.Waiting, "every node serving flash is quarantined") && strings.Contains(tv.Waiting, "bench power supply replaced"), tv.Waiting
	})
	if _, err := c.Release(ctx, bad, "flash"); err != nil {
		t.Fatal(err)
	}
	p, at := attemptOn(t, fakes, sp.Task, 1)
	if at != 0 {
		t.Fatalf("after the release: got the task on node %d, want it on %s", at, bad)
	}
	p.Finish(0)
	waitTask(t, c, sp.Job, sp.Task, "passed")
	if r := rig(bad); r.Quarantined || r.InfraStreak != 0 {
		t.Errorf("after the release: got %+v, want it serving with its streak reset", r)
	}
	var se *api.StatusError
	if _, err := c.Release(ctx, bad, "flash"); !errors.As(err, &se) || se.HTTPStatus != 409 || !strings.Contains(se.Msg, "not quarantined") {
		t.Errorf("releasing a rig in service: got %v, want 409 saying it is not quarantined", err)
	}
}

// TestSpawnPriority: a spawn's priority reaches the ledger's task; one out
// of range is refused with the flag to fix.
func TestSpawnPriority(t *testing.T) {
	m := startMesh(t, 1, func(i int, c *node.Config) { c.Topics = topics("hw") })
	c := m.Client(0)
	ctx := testCtx(t)
	sp, err := c.Spawn(ctx, api.SpawnRequest{Topic: "none-serves-it", Args: []string{}, Priority: 7, Key: key()})
	if err != nil {
		t.Fatal(err)
	}
	var got int
	m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) { got = s.Tasks[sp.Task].Priority })
	if got != 7 {
		t.Errorf("the ledger's task: got priority %d, want 7", got)
	}
	var se *api.StatusError
	if _, err := c.Spawn(ctx, api.SpawnRequest{Topic: "hw", Args: []string{}, Priority: 5000, Key: key()}); !errors.As(err, &se) || se.HTTPStatus != 400 || !strings.Contains(se.Msg, "--priority") {
		t.Errorf("priority 5000: got %v, want 400 naming --priority", err)
	}
}
