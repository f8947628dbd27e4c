package runner

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// An attempt the ledger assigns to this node runs in a workspace of its
// own with OurCI's environment, reports its start and end, and leaves
// nothing behind: no workspace, no run record.
func TestRunnerRunsAnAssignedAttempt(t *testing.T) {
	g := newRig(t, nil)
	g.run()
	g.spawn("j1", "t1", "build", nil, "n1")
	p := g.proc(0)
	env := envOf(p)
	for _, c := range []struct{ name, got, want string }{
		{"dir", p.Spec.Dir, g.dirs.work + "/t1.1"},
		{"args", strings.Join(p.Spec.Args, " "), "make t1"},
		{"OURCI_TASK", env["OURCI_TASK"], "t1"},
		{"OURCI_JOB", env["OURCI_JOB"], "j1"},
		{"OURCI_ATTEMPT", env["OURCI_ATTEMPT"], "1"},
		{"OURCI_NODE", env["OURCI_NODE"], "http://127.0.0.1:7380"},
		{"OURCI_TOKEN", env["OURCI_TOKEN"], g.secret.TaskToken("t1", 1)},
		{"label ourci.task", p.Spec.Labels["ourci.task"], "t1"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if got := g.records(); !slices.Equal(got, []string{"t1.1.pid"}) {
		t.Errorf("run records while it runs: got %v, want [t1.1.pid]", got)
	}
	g.settled("t1", 1, raftfsm.TaskRunning)
	io.WriteString(p.Spec.Output, "compiling\n")
	p.Finish(0)
	g.settled("t1", 1, raftfsm.TaskPassed)
	if got, want := g.rep.kinds("t1"), []string{"started", "finished:passed"}; !slices.Equal(got, want) {
		t.Errorf("reports: got %v, want %v", got, want)
	}
	wait.For(t, 5*time.Second, "the workspace and run record to go", func() (bool, string) {
		return len(g.workspaces()) == 0 && len(g.records()) == 0, fmt.Sprintf("workspaces %v, records %v", g.workspaces(), g.records())
	})
	if log := g.log("t1", 1); !strings.Contains(log, "compiling\n") || !strings.Contains(log, "exit code 0") {
		t.Errorf("log: got %q, want the output and the exit code", log)
	}
	wait.For(t, 5*time.Second, "the finished log to be handed to the node to keep", func() (bool, string) {
		g.host.mu.Lock()
		defer g.host.mu.Unlock()
		return slices.Equal(g.host.kept, []string{"t1.1"}), fmt.Sprint(g.host.kept)
	})
}

// The runner holds an attempt from its start until its log is kept: the
// node's sweep of leftover logs must not seal a log KeepLog is about to.
func TestRunnerHoldsAnAttemptUntilItsLogIsKept(t *testing.T) {
	g := newRig(t, nil)
	gate := make(chan struct{})
	g.host.keeping = gate
	g.run()
	if g.r.Holds("t1", 1) {
		t.Fatal("holds t1 attempt 1 before it was assigned")
	}
	g.spawn("j1", "t1", "build", nil, "n1")
	p := g.proc(0)
	if !g.r.Holds("t1", 1) || g.r.Holds("t1", 2) {
		t.Errorf("while it runs: holds attempt 1 %v, attempt 2 %v; want only 1", g.r.Holds("t1", 1), g.r.Holds("t1", 2))
	}
	p.Finish(0)
	wait.For(t, 5*time.Second, "its log handed to KeepLog", func() (bool, string) {
		g.host.mu.Lock()
		defer g.host.mu.Unlock()
		return len(g.host.kept) == 1, fmt.Sprint(g.host.kept)
	})
	g.settled("t1", 1, raftfsm.TaskPassed)
	if !g.r.Holds("t1", 1) {
		t.Error("while KeepLog runs: the runner does not hold the attempt")
	}
	close(gate)
	wait.For(t, 5*time.Second, "the runner to let go of the attempt once its log is kept", func() (bool, string) {
		return !g.r.Holds("t1", 1), "still held"
	})
}

// How an attempt ends decides what the runner reports.
func TestRunnerOutcomes(t *testing.T) {
	cases := []struct {
		name  string
		topic string
		setup func(*rig)
		spawn func(*raftfsm.Spawn)
		end   func(*rig, *executor.FakeProcess) // nil: the process never starts
		state raftfsm.TaskState
		code  int // -1: no exit code
		error string
	}{
		{name: "exit 0 passes", topic: "build", end: func(_ *rig, p *executor.FakeProcess) { p.Finish(0) }, state: raftfsm.TaskPassed},
		{name: "exit 3 fails", topic: "build", end: func(_ *rig, p *executor.FakeProcess) { p.Finish(3) }, state: raftfsm.TaskFailed, code: 3},
		{name: "past its timeout", topic: "build", spawn: func(sp *raftfsm.Spawn) { sp.Timeout = time.Minute },
			end: func(g *rig, p *executor.FakeProcess) {
				// The runner asks the clock for its timeout once the process
				// runs: move the clock on until it has and fired.
				wait.For(g.t, 10*time.Second, "the timeout to stop the process", func() (bool, string) {
					g.clock.Advance(2 * time.Minute)
					select {
					case <-p.Stopped():
						return true, ""
					default:
						return false, "not stopped"
					}
				})
			}, state: raftfsm.TaskTimedOut, code: executor.ExitSIGTERM, error: "timed out after 1m0s"},
		{name: "exit 75 is the task's own infra failure", topic: "build",
			end: func(_ *rig, p *executor.FakeProcess) { p.Finish(InfraExitCode) }, state: raftfsm.TaskQueued, error: "the task exited 75 (EX_TEMPFAIL)"},
		{name: "ourci-node fail --infra gives the reason", topic: "build",
			end: func(_ *rig, p *executor.FakeProcess) {
				fmt.Fprintf(p.Spec.Output, "flashing\n%sno answer on /dev/ttyUSB0\r\n%s\n", InfraMarker, strings.Repeat("x", 2000))
				p.Finish(InfraExitCode)
			}, state: raftfsm.TaskQueued, error: "no answer on /dev/ttyUSB0"},
		{name: "a marker without exit 75 is only output", topic: "build",
			end: func(_ *rig, p *executor.FakeProcess) {
				fmt.Fprintf(p.Spec.Output, "%sbut it carried on\n", InfraMarker)
				p.Finish(1)
			}, state: raftfsm.TaskFailed, code: 1},
		{name: "an image topic without an image fails", topic: "img", state: raftfsm.TaskFailed, code: -1, error: "spawn them with --image IMAGE"},
		{name: "a topic it no longer serves is an infra failure", topic: "gone", state: raftfsm.TaskQueued, error: "n1 no longer serves topic gone"},
		{name: "a spawn its rules refuse is an infra failure", topic: "build",
			spawn: func(sp *raftfsm.Spawn) {}, setup: func(g *rig) {
				g.host.topics["build"] = topic.Topic{Name: "build", Accept: []string{"tasks"}} // no operators
			}, state: raftfsm.TaskQueued, error: "does not accept spawns into build from an operator"},
		{name: "an executor that cannot start is an infra failure", topic: "build",
			setup: func(g *rig) { g.exec.FailStart(fmt.Errorf("no such binary")) }, state: raftfsm.TaskQueued, error: "could not start: executor: fake start: no such binary"},
		{name: "an executor that is unavailable is an infra failure", topic: "build",
			setup: func(g *rig) { g.host.backendErr = fmt.Errorf("docker: engine not reachable") }, state: raftfsm.TaskQueued, error: "executor unavailable: docker: engine not reachable"},
		{name: "a failed checkout is an infra failure", topic: "build",
			spawn: func(sp *raftfsm.Spawn) {
				sp.NewJob.Source = raftfsm.Source{Repo: "https://git.example/fw.git", SHA: strings.Repeat("a", 40)}
			},
			state: raftfsm.TaskQueued, error: "checkout failed: checkout: https://git.example/fw.git: repository not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newRig(t, nil)
			if c.setup != nil {
				c.setup(g)
			}
			g.run()
			g.spawn("j1", "t1", c.topic, c.spawn, "n1")
			if c.end != nil {
				c.end(g, g.proc(0))
			}
			// An infra failure queues the next attempt (elsewhere): the
			// first attempt's error stays on the task.
			attempt := 1
			if c.state == raftfsm.TaskQueued {
				attempt = 2
			}
			got := g.settled("t1", attempt, c.state)
			if c.state == raftfsm.TaskQueued {
				got.Error = got.InfraError
			}
			if !strings.Contains(got.Error, c.error) {
				t.Errorf("error: got %q, want it to contain %q", got.Error, c.error)
			}
			switch {
			case c.code == -1 || c.state == raftfsm.TaskQueued:
				if got.ExitCode != nil {
					t.Errorf("exit code: got %d, want none", *got.ExitCode)
				}
			case got.ExitCode == nil || *got.ExitCode != c.code:
				t.Errorf("exit code: got %v, want %d", got.ExitCode, c.code)
			}
			if c.end == nil && len(g.exec.Procs()) != 0 {
				t.Errorf("processes started: got %d, want none", len(g.exec.Procs()))
			}
		})
	}
}

// The ledger takes an attempt away (its job is cancelled): the runner
// stops its process and reports nothing more, as the ledger settled it.
func TestRunnerStopsWhatTheLedgerTakesAway(t *testing.T) {
	g := newRig(t, nil)
	g.run()
	g.spawn("j1", "t1", "build", nil, "n1")
	p := g.proc(0)
	g.settled("t1", 1, raftfsm.TaskRunning)
	g.ok(raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: "j1", Reason: raftfsm.ReasonCancelled, At: g.clock.Now()}})
	select {
	case <-p.Stopped():
	case <-time.After(wait.Scale(10 * time.Second)):
		t.Fatal("the process of a cancelled job was not stopped")
	}
	wait.For(t, 5*time.Second, "the attempt's workspace to go", func() (bool, string) {
		return len(g.workspaces()) == 0, fmt.Sprint(g.workspaces())
	})
	if got, want := g.rep.kinds("t1"), []string{"started"}; !slices.Equal(got, want) {
		t.Errorf("reports: got %v, want %v (a stopped attempt reports nothing)", got, want)
	}
	if got := g.ledger.Task("t1"); got.State != raftfsm.TaskCancelled {
		t.Errorf("task: got %s, want cancelled", got.State)
	}
	if log := g.log("t1", 1); !strings.Contains(log, "the ledger took this attempt away") {
		t.Errorf("log: got %q, want the reason it stopped", log)
	}
}

// What a previous life of this node started (its run record says so, or
// the ledger shows it running here) is handed back, never run again.
func TestRunnerHandsBackWhatAPreviousLifeStarted(t *testing.T) {
	for _, c := range []struct {
		name     string
		previous map[string]int
		started  bool // the ledger shows the attempt running
	}{
		{"its run record names it", map[string]int{"t1": 1}, false},
		{"the ledger shows it running here", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newRig(t, func(cfg *Config) { cfg.Previous = c.previous })
			g.spawn("j1", "t1", "build", nil, "n1")
			if c.started {
				g.ok(raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: "t1", Attempt: 1, Node: "n1", At: g.clock.Now()}})
			}
			g.run()
			got := g.settled("t1", 2, raftfsm.TaskQueued)
			if len(g.exec.Procs()) != 0 {
				t.Errorf("processes started: got %d, want none", len(g.exec.Procs()))
			}
			if want := []string{"abandoned"}; !slices.Equal(g.rep.kinds("t1"), want) {
				t.Errorf("reports: got %v, want %v", g.rep.kinds("t1"), want)
			}
			// The next attempt, given to this node, runs: it is this life's.
			g.assign("t1", 2, "n1")
			g.proc(0).Finish(0)
			g.settled("t1", 2, raftfsm.TaskPassed)
			_ = got
		})
	}
}

// Disown: with a new data directory, whatever the ledger gives this node's
// name belonged to an earlier incarnation, which may have started it.
func TestRunnerDisownsAnEarlierIncarnationsWork(t *testing.T) {
	g := newRig(t, nil)
	g.spawn("j1", "t1", "build", nil, "n1")
	g.r.Disown()
	g.run()
	g.settled("t1", 2, raftfsm.TaskQueued)
	if len(g.exec.Procs()) != 0 {
		t.Errorf("processes started: got %d, want none", len(g.exec.Procs()))
	}
}

// A fresh assignment starts at once and reports its start after (the
// dispatch fast path); a stale one waits for the ledger to accept its
// start, and does not run when the ledger gave it away meanwhile.
func TestRunnerFencesStaleAssignments(t *testing.T) {
	t.Run("fresh: starts before the ledger heard", func(t *testing.T) {
		g := newRig(t, nil)
		g.rep.gate = make(chan struct{}) // no report lands until released
		g.run()
		g.spawn("j1", "t1", "build", nil, "n1")
		p := g.proc(0)
		if got := g.ledger.Task("t1").State; got != raftfsm.TaskAssigned {
			t.Errorf("ledger while the start report is held: got %s, want assigned", got)
		}
		close(g.rep.gate)
		g.settled("t1", 1, raftfsm.TaskRunning)
		p.Finish(0)
		g.settled("t1", 1, raftfsm.TaskPassed)
	})
	t.Run("stale and given away: not run", func(t *testing.T) {
		g := newRig(t, nil)
		g.spawn("j1", "t1", "build", nil, "n1")
		g.clock.Advance(time.Minute) // the replica applies an old assignment
		// Before the start report lands, the leader has requeued the
		// attempt (this node was thought dead).
		g.rep.before = func(r api.Report) {
			if r.Kind == api.ReportStarted {
				g.ok(raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{Task: "t1", Attempt: 1, Reason: "node lost", MaxAttempts: 3, At: g.clock.Now()}})
			}
		}
		g.run()
		wait.For(t, 10*time.Second, "the runner to give up the stale attempt", func() (bool, string) {
			log, _ := logText(g, "t1", 1)
			return strings.Contains(log, "gave this attempt away before it started"), fmt.Sprintf("log %q", log)
		})
		if n := len(g.exec.Procs()); n != 0 {
			t.Errorf("processes started: got %d, want none", n)
		}
	})
	t.Run("stale and still ours: runs once accepted", func(t *testing.T) {
		g := newRig(t, nil)
		g.spawn("j1", "t1", "build", nil, "n1")
		g.clock.Advance(time.Minute)
		g.run()
		p := g.proc(0)
		if got := g.ledger.Task("t1").State; got != raftfsm.TaskRunning {
			t.Errorf("ledger when the stale attempt's process starts: got %s, want running (accepted first)", got)
		}
		p.Finish(0)
		g.settled("t1", 1, raftfsm.TaskPassed)
	})
}

func logText(g *rig, id string, attempt int) (string, error) {
	var b strings.Builder
	err := g.logs.Stream(g.r.ctx, &b, func() {}, id, attempt, false)
	return b.String(), err
}

// An unhealthy node starts nothing; once healthy, the next change of the
// ledger starts what waits. (scan is called directly: what it did not
// start is known when it returns.)
func TestRunnerUnhealthyStartsNothing(t *testing.T) {
	g := newRig(t, nil)
	g.host.unhealthy = "no space left on device"
	g.spawn("j1", "t1", "build", nil, "n1")
	g.r.scan()
	g.r.mu.Lock()
	started := len(g.r.local)
	g.r.mu.Unlock()
	if started != 0 {
		t.Fatalf("an unhealthy node started %d attempts, want none", started)
	}
	g.host.mu.Lock()
	g.host.unhealthy = ""
	g.host.mu.Unlock()
	g.r.scan()
	g.proc(0).Finish(0)
	g.settled("t1", 1, raftfsm.TaskPassed)
}

// Reports that cannot be delivered (the leader is away) are retried until
// they land.
func TestRunnerRetriesReports(t *testing.T) {
	g := newRig(t, nil)
	g.rep.transient = 4
	g.run()
	g.spawn("j1", "t1", "build", nil, "n1")
	g.proc(0).Finish(7)
	got := g.settled("t1", 1, raftfsm.TaskFailed)
	if got.ExitCode == nil || *got.ExitCode != 7 {
		t.Errorf("exit code: got %v, want 7", got.ExitCode)
	}
}

// Shutdown stops what runs and hands it back, so another node runs the
// next attempt; nothing new starts after it.
func TestRunnerShutdownHandsBack(t *testing.T) {
	g := newRig(t, nil)
	g.run()
	g.spawn("j1", "t1", "build", nil, "n1")
	p := g.proc(0)
	g.settled("t1", 1, raftfsm.TaskRunning)
	g.r.Shutdown(wait.Scale(5 * time.Second))
	select {
	case <-p.Stopped():
	default:
		t.Error("Shutdown returned with the process not stopped")
	}
	g.settled("t1", 2, raftfsm.TaskQueued)
	if got, want := g.rep.kinds("t1"), []string{"started", "abandoned"}; !slices.Equal(got, want) {
		t.Errorf("reports: got %v, want %v", got, want)
	}
	g.assign("t1", 2, "n1") // given straight back: a closing runner takes nothing
	g.r.scan()
	if n := len(g.exec.Procs()); n != 1 {
		t.Errorf("processes after Shutdown: got %d started, want the first only", n)
	}
}

// A topic's secrets reach its tasks and are masked in the log; a task's
// --env can set neither them nor a name this node does not allow.
func TestRunnerSecretsAndEnvPolicy(t *testing.T) {
	g := newRig(t, nil)
	g.host.topics["build"] = topic.Topic{Name: "build", Secrets: map[string]string{"SIGNING_KEY": "s3cr3t-v4lue-42"}}
	g.run()
	g.spawn("j1", "t1", "build", func(sp *raftfsm.Spawn) {
		sp.Env = []string{"SIGNING_KEY=forged", "LD_PRELOAD=/tmp/evil.so", "CC=clang"}
	}, "n1")
	p := g.proc(0)
	env := envOf(p)
	for _, c := range []struct{ name, got, want string }{
		{"SIGNING_KEY", env["SIGNING_KEY"], "s3cr3t-v4lue-42"},
		{"CC", env["CC"], "clang"},
		{"LD_PRELOAD", env["LD_PRELOAD"], ""},
	} {
		if c.got != c.want {
			t.Errorf("env %s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	io.WriteString(p.Spec.Output, "key is s3cr3t-v4lue-42; token "+env["OURCI_TOKEN"]+"\n")
	p.Finish(0)
	g.settled("t1", 1, raftfsm.TaskPassed)
	log := g.log("t1", 1)
	if strings.Contains(log, "s3cr3t-v4lue-42") || strings.Contains(log, env["OURCI_TOKEN"]) {
		t.Errorf("log shows a secret or the task's token:\n%s", log)
	}
	if !strings.Contains(log, "does not let a spawn set LD_PRELOAD") {
		t.Errorf("log: got %q, want a note that LD_PRELOAD was dropped", log)
	}
}

// An attempt on its way to starting when the node begins its shutdown
// (Stop) does not start: it is handed back, and no process runs.
func TestRunnerStartsNothingOnceStopped(t *testing.T) {
	g := newRig(t, nil)
	g.host.backendAsked, g.host.backendGate = make(chan struct{}, 1), make(chan struct{})
	g.spawn("j1", "t1", "build", nil, "n1")
	g.r.scan() // the attempt is decided on, and waits for its backend
	select {
	case <-g.host.backendAsked:
	case <-time.After(wait.Scale(10 * time.Second)):
		t.Fatal("the attempt never asked for its backend")
	}
	g.r.Stop()
	close(g.host.backendGate)
	wait.For(t, 10*time.Second, "the attempt handed back", func() (bool, string) {
		got := g.rep.kinds("t1")
		return slices.Equal(got, []string{"abandoned"}), fmt.Sprint(got)
	})
	if n := len(g.exec.Procs()); n != 0 {
		t.Errorf("processes started after Stop: got %d, want 0", n)
	}
	if log := g.log("t1", 1); !strings.Contains(log, "shutting down: not started") {
		t.Errorf("the attempt's log: got %q, want it to say why it did not start", log)
	}
}
