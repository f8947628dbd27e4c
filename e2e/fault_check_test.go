package e2e

// The fault suite's one invariant checker. It reads the ledger through the
// API of the live nodes and the executions the tasks recorded in RUNLOG,
// polls until the mesh settles (or a deadline passes), and then checks:
//
//  1. every task terminal (none queued, assigned or running), none lost
//     unless the scenario allows it;
//  2. no acknowledged spawn lost, and none landed twice;
//  3. retried tasks recorded as attempt 2 or later: an execution that its
//     node did not outlive cannot be the task's final attempt;
//  4. no attempt ran on two nodes (nor twice at all);
//  5. no task passed twice: task IDs unique, and a passed task's final
//     attempt and node are those of exactly one complete execution, with no
//     later attempt ever run;
//  6. every live replica's ledger hash identical at equal indexes;
//  7. job states and statuses as their tasks imply.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

type faultCheckOpts struct {
	allowLost bool          // tasks may end lost (every attempt's node died)
	settle    time.Duration // how long the mesh may take to settle
	// endedOK, if set, may excuse a task that ended neither passed nor
	// lost (invariant 1): it returns true for an end the scenario
	// explains (chaos: a failure on a node whose disk was full).
	endedOK func(ft faultTask, execs []*execution) bool
}

// faultSnapshot is what the checker read in one pass.
type faultSnapshot struct {
	reader    string                 // the node whose replica the jobs were read from
	ledgers   map[string]faultLedger // by node name
	jobs      map[string]faultJob
	missing   map[string]error // job IDs the reader answered 404 for
	execs     []*execution
	badLines  []string
	childAcks []spawnAck
	childFail int
}

// settled reports whether the snapshot shows a mesh at rest, and if not why.
func (s *faultSnapshot) settled(live int) (bool, string) {
	if len(s.ledgers) != live {
		return false, fmt.Sprintf("%d of %d live nodes answered /v1/ledger", len(s.ledgers), live)
	}
	var idx []string
	first := faultLedger{}
	same := true
	for _, l := range s.ledgers {
		idx = append(idx, fmt.Sprintf("%s@%d", l.Node, l.Index))
		if first.Node == "" {
			first = l
		} else if l.Index != first.Index {
			same = false
		}
	}
	sort.Strings(idx)
	if !same {
		return false, "replica indexes differ: " + strings.Join(idx, " ")
	}
	for _, j := range s.jobs {
		if j.Job.State != "closed" {
			return false, fmt.Sprintf("job %s is %s (%d tasks)", j.Job.ID, j.Job.State, len(j.Tasks))
		}
		for _, ft := range j.Tasks {
			if !terminalState(ft.State) {
				return false, fmt.Sprintf("job %s: %v", j.Job.ID, ft)
			}
		}
	}
	tasks := 0
	for _, j := range s.jobs {
		tasks += len(j.Tasks)
	}
	if first.Jobs != len(s.jobs) || first.Tasks != tasks {
		return false, fmt.Sprintf("the ledger holds %d jobs and %d tasks; the checker found %d jobs with %d tasks",
			first.Jobs, first.Tasks, len(s.jobs), tasks)
	}
	for _, e := range s.execs {
		if e.end == 0 && taskProcessAlive(e.pid, e.task) {
			return false, fmt.Sprintf("execution %v is still running", e)
		}
	}
	return true, ""
}

// snapshot reads every live node's ledger summary, every job the checker
// knows of from one live replica, RUNLOG and SPAWNLOG.
func (m *faultMesh) snapshot(ctx context.Context, acks []spawnAck) (*faultSnapshot, error) {
	s := &faultSnapshot{ledgers: map[string]faultLedger{}, jobs: map[string]faultJob{}, missing: map[string]error{}}
	var err error
	// SPAWNLOG first: a child acknowledged there is in the ledger read next.
	if s.childAcks, s.childFail, err = readSpawnLog(m.spawnLog); err != nil {
		return nil, err
	}
	live := m.live()
	reader := -1
	var errs []error
	ids := map[string]bool{}
	for _, i := range live {
		l, err := m.ledger(ctx, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.ledgers[m.nodes[i].name] = l
		if reader < 0 {
			reader = i
			if st, err := m.status(ctx, i); err == nil {
				for _, j := range st.Jobs {
					ids[j.ID] = true
				}
			}
		}
	}
	if reader < 0 {
		return s, fmt.Errorf("no live node answered: %v", errors.Join(errs...))
	}
	s.reader = m.nodes[reader].name
	for _, a := range acks {
		ids[a.job] = true
	}
	for _, a := range s.childAcks {
		ids[a.job] = true
	}
	// RUNLOG: jobs whose tasks ran. (Read again below, after the ledger.)
	if s.execs, s.badLines, err = readRunLog(m.runLog); err != nil {
		return nil, err
	}
	for _, e := range s.execs {
		ids[e.job] = true
	}
	for id := range ids {
		j, err := m.job(ctx, reader, id)
		switch {
		case errors.Is(err, errNotFound):
			s.missing[id] = err
		case err != nil:
			return s, err
		default:
			s.jobs[id] = j
		}
	}
	// RUNLOG after the ledger: a task writes its end line before it exits,
	// so every end the ledger's state depends on is in this read.
	if s.execs, s.badLines, err = readRunLog(m.runLog); err != nil {
		return nil, err
	}
	return s, nil
}

// faultCheckResult sums up what the checker saw, for the summary line.
type faultCheckResult struct {
	jobs, tasks, retried, lost, execs, acked, childAcks int
	excused                                             int // ends endedOK excused
	settledIn                                           time.Duration
}

// checkFaultInvariants waits for the mesh to settle and checks the seven
// invariants, reporting each violation with its evidence through t.Errorf.
// acks are the spawns the test's spawners had acknowledged.
func (m *faultMesh) checkFaultInvariants(t *testing.T, acks []spawnAck, o faultCheckOpts) faultCheckResult {
	t.Helper()
	s, res, v := m.faultCheck(acks, o)
	const maxShown = 40
	for i, msg := range v {
		if i == maxShown {
			t.Errorf("... and %d more violations", len(v)-maxShown)
			break
		}
		t.Errorf("VIOLATION %s", msg)
	}
	if s != nil {
		t.Logf("checker: %d jobs, %d tasks (%d retried, %d lost), %d executions, %d spawns acknowledged to the test and %d to tasks (%d child spawns failed in tasks); settled in %v; read from %s; ledgers %v",
			res.jobs, res.tasks, res.retried, res.lost, res.execs, res.acked, res.childAcks, s.childFail, res.settledIn.Round(time.Millisecond), s.reader, ledgerSummary(s))
	}
	return res
}

// faultCheck waits for the mesh to settle and checks the seven invariants;
// it returns what it read (nil if it could read nothing), the sums, and
// every violation found, each with its evidence.
func (m *faultMesh) faultCheck(acks []spawnAck, o faultCheckOpts) (*faultSnapshot, faultCheckResult, []string) {
	if o.settle == 0 {
		o.settle = 90 * time.Second
	}
	begin := time.Now()
	deadline := begin.Add(o.settle)
	var s *faultSnapshot
	var why string
	var res faultCheckResult
	var v []string // violations
	for {
		var err error
		s, err = m.snapshot(context.Background(), acks)
		if err != nil {
			why = err.Error()
		} else {
			var ok bool
			ok, why = s.settled(len(m.live()))
			if ok {
				break
			}
		}
		// Replicas at the same index must hold the same ledger, settled or not.
		if s != nil && len(hashViolations(s)) > 0 {
			break
		}
		if early := m.exitedEarly(); len(early) > 0 {
			v = append(v, "node process died: "+strings.Join(early, "; "))
			break
		}
		if time.Now().After(deadline) {
			v = append(v, fmt.Sprintf("invariant 1/6: the mesh did not settle within %v: %s", o.settle, why))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.settledIn = time.Since(begin)
	if s == nil {
		return nil, res, append(v, fmt.Sprintf("fault checker: could not read the mesh: %s", why))
	}
	v = append(v, hashViolations(s)...)
	for _, l := range s.badLines {
		v = append(v, "RUNLOG: malformed or unmatched line: "+l)
	}

	// Index the ledger.
	tasks := map[string]faultTask{}
	taskJob := map[string]string{}
	byLabel := map[string][]string{}
	for _, j := range s.jobs {
		res.jobs++
		for _, ft := range j.Tasks {
			res.tasks++
			if prev, dup := taskJob[ft.ID]; dup {
				v = append(v, fmt.Sprintf("invariant 5: task ID %s appears twice in the ledger (jobs %s and %s)", ft.ID, prev, j.Job.ID))
			}
			tasks[ft.ID], taskJob[ft.ID] = ft, j.Job.ID
			if l := labelOf(ft.Args); l != "" {
				byLabel[l] = append(byLabel[l], ft.ID)
			} else {
				v = append(v, fmt.Sprintf("ledger: task %s has args %q the suite did not spawn", ft.ID, ft.Args))
			}
			if ft.Attempt >= 2 {
				res.retried++
			}
		}
	}
	for id, err := range s.missing {
		v = append(v, fmt.Sprintf("invariant 2: job %s is not in the ledger of %s: %v", id, s.reader, err))
	}

	// 1. Every task terminal; passed with exit code 0 (the scripts always
	// exit 0), or lost where allowed.
	for _, id := range sortedKeys(tasks) {
		ft := tasks[id]
		switch {
		case !terminalState(ft.State):
			v = append(v, fmt.Sprintf("invariant 1: not terminal: %v (job %s)", ft, taskJob[id]))
		case ft.State == "lost":
			res.lost++
			if !o.allowLost {
				v = append(v, fmt.Sprintf("invariant 1: lost, which this scenario does not allow: %v; executions: %v", ft, execsOf(s.execs, id)))
			}
		case ft.State != "passed" && o.endedOK != nil && o.endedOK(ft, execsOf(s.execs, id)):
			res.excused++
		case ft.State != "passed":
			v = append(v, fmt.Sprintf("invariant 1: ended %s, but every task script exits 0: %v; executions: %v", ft.State, ft, execsOf(s.execs, id)))
		case ft.ExitCode == nil || *ft.ExitCode != 0:
			v = append(v, fmt.Sprintf("invariant 1: passed without exit code 0: %v", ft))
		}
	}

	// 2. No acknowledged spawn lost; every spawn landed at most once.
	all := append(append([]spawnAck(nil), acks...), s.childAcks...)
	res.acked, res.childAcks = len(acks), len(s.childAcks)
	for _, a := range all {
		ft, ok := tasks[a.task]
		switch {
		case !ok:
			v = append(v, fmt.Sprintf("invariant 2: spawn acknowledged to %s (job %s task %s label %s) is not in the ledger", a.by, a.job, a.task, a.label))
		case taskJob[a.task] != a.job:
			v = append(v, fmt.Sprintf("invariant 2: spawn acknowledged to %s as task %s of job %s is in job %s", a.by, a.task, a.job, taskJob[a.task]))
		case labelOf(ft.Args) != a.label:
			v = append(v, fmt.Sprintf("invariant 2: spawn acknowledged to %s as task %s with label %s has label %s in the ledger", a.by, a.task, a.label, labelOf(ft.Args)))
		}
	}
	for _, l := range sortedKeys(byLabel) {
		if ids := byLabel[l]; len(ids) > 1 {
			var desc []string
			for _, id := range ids {
				desc = append(desc, tasks[id].String())
			}
			why := ""
			if parent := tasks[ids[0]].Parent; parent != "" {
				// label ROOT.aN.cK: made by attempt N of the parent.
				var att int
				if i := strings.LastIndex(l, ".a"); i >= 0 {
					fmt.Sscanf(l[i+2:], "%d", &att)
				}
				if n := len(execsOfAttempt(s.execs, parent, att)); n > 1 {
					why = fmt.Sprintf(" (the spawning task %s attempt %d itself ran %d times: see invariant 4)", parent, att, n)
				}
			}
			v = append(v, fmt.Sprintf("invariant 2: one spawn (label %s) landed %d times%s: %s", l, len(ids), why, strings.Join(desc, "; ")))
		}
	}

	// 3-5 against RUNLOG.
	res.execs = len(s.execs)
	byAttempt := map[string][]*execution{} // "task attempt" → executions
	for _, e := range s.execs {
		key := fmt.Sprintf("%s %d", e.task, e.attempt)
		byAttempt[key] = append(byAttempt[key], e)
		ft, ok := tasks[e.task]
		if !ok {
			v = append(v, fmt.Sprintf("RUNLOG: execution %v of a task the ledger does not hold", e))
			continue
		}
		if e.attempt < 1 || e.attempt > ft.Attempt {
			v = append(v, fmt.Sprintf("invariant 3/5: execution %v has an attempt the ledger never gave (ledger: %v)", e, ft))
		}
		if k, outlived := outlivedNode(e, m.kills(e.node)); outlived && ft.Attempt <= e.attempt && ft.State != "lost" {
			v = append(v, fmt.Sprintf("invariant 3: %v was still running when %s was killed at %s, yet the ledger shows %v (want attempt > %d)",
				e, e.node, time.Unix(0, k).Format("15:04:05.000"), ft, e.attempt))
		}
	}
	// 4. One execution per attempt, on one node.
	for _, key := range sortedKeys(byAttempt) {
		es := byAttempt[key]
		if len(es) < 2 {
			continue
		}
		nodes := map[string]bool{}
		for _, e := range es {
			nodes[e.node] = true
		}
		what := "ran on two nodes"
		if len(nodes) == 1 {
			what = "ran twice (same node)"
		}
		task, _, _ := strings.Cut(key, " ")
		v = append(v, fmt.Sprintf("invariant 4: attempt %s %s: %v; ledger: %v", key, what, es, tasks[task]))
	}
	// 5. A passed task's final attempt is one complete execution on the
	// node the ledger names, which its node outlived.
	for _, id := range sortedKeys(tasks) {
		ft := tasks[id]
		if ft.State != "passed" {
			continue
		}
		es := byAttempt[fmt.Sprintf("%s %d", id, ft.Attempt)]
		switch {
		case len(es) == 0:
			v = append(v, fmt.Sprintf("invariant 5: %v passed, but RUNLOG has no execution of attempt %d (executions: %v)", ft, ft.Attempt, execsOf(s.execs, id)))
		case len(es) == 1 && es[0].node != ft.Node:
			v = append(v, fmt.Sprintf("invariant 5: %v passed on %s, but attempt %d ran on %s: %v", ft, ft.Node, ft.Attempt, es[0].node, es[0]))
		case len(es) == 1 && es[0].end == 0:
			v = append(v, fmt.Sprintf("invariant 5: %v passed, but its execution never finished: %v", ft, es[0]))
		}
		for _, e := range es {
			if k, outlived := outlivedNode(e, m.kills(e.node)); outlived && e.node == ft.Node {
				v = append(v, fmt.Sprintf("invariant 5: %v passed, but the execution of that attempt outlived its node %s (killed %s): %v",
					ft, e.node, time.Unix(0, k).Format("15:04:05.000"), e))
			}
		}
	}

	// 7. Job state and status as the tasks imply.
	for _, id := range sortedKeys(s.jobs) {
		j := s.jobs[id]
		allTerminal, allPassed, anyBad := true, true, false
		for _, ft := range j.Tasks {
			allTerminal = allTerminal && terminalState(ft.State)
			allPassed = allPassed && ft.State == "passed"
			anyBad = anyBad || (terminalState(ft.State) && ft.State != "passed")
		}
		wantState := "open"
		if allTerminal {
			wantState = "closed"
		}
		wantStatus := "pending"
		switch {
		case anyBad:
			wantStatus = "failed"
		case allPassed:
			wantStatus = "passed"
		}
		if j.Job.State != wantState || j.Job.Status != wantStatus {
			var desc []string
			for _, ft := range j.Tasks {
				desc = append(desc, ft.State)
			}
			v = append(v, fmt.Sprintf("invariant 7: job %s is %s/%s, but its tasks (%s) imply %s/%s",
				id, j.Job.State, j.Job.Status, strings.Join(desc, ","), wantState, wantStatus))
		}
		if j.Job.Root == "" || tasks[j.Job.Root].ID == "" {
			v = append(v, fmt.Sprintf("ledger: job %s has no root task among its tasks", id))
		}
	}

	return s, res, v
}

// hashViolations compares the hashes of replicas at the same index.
func hashViolations(s *faultSnapshot) []string {
	byIndex := map[uint64][]faultLedger{}
	for _, l := range s.ledgers {
		byIndex[l.Index] = append(byIndex[l.Index], l)
	}
	var v []string
	for idx, ls := range byIndex {
		for _, l := range ls[1:] {
			if l.Hash != ls[0].Hash {
				v = append(v, fmt.Sprintf("invariant 6: replicas at index %d differ: %s has hash %s (%d jobs, %d tasks), %s has %s (%d jobs, %d tasks)",
					idx, ls[0].Node, ls[0].Hash, ls[0].Jobs, ls[0].Tasks, l.Node, l.Hash, l.Jobs, l.Tasks))
			}
		}
	}
	return v
}

func ledgerSummary(s *faultSnapshot) string {
	var out []string
	for _, name := range sortedKeys(s.ledgers) {
		l := s.ledgers[name]
		h := l.Hash
		if len(h) > 12 {
			h = h[:12]
		}
		out = append(out, fmt.Sprintf("%s@%d:%s", name, l.Index, h))
	}
	return strings.Join(out, " ")
}

// outlivedNode reports whether e was still running when its node was killed:
// started before a kill and ended after it, or never ended.
func outlivedNode(e *execution, kills []int64) (int64, bool) {
	for _, k := range kills {
		if e.start < k && (e.end == 0 || e.end > k) {
			return k, true
		}
	}
	return 0, false
}

func execsOfAttempt(execs []*execution, task string, attempt int) []*execution {
	var out []*execution
	for _, e := range execs {
		if e.task == task && e.attempt == attempt {
			out = append(out, e)
		}
	}
	return out
}

func execsOf(execs []*execution, task string) []*execution {
	var out []*execution
	for _, e := range execs {
		if e.task == task {
			out = append(out, e)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
