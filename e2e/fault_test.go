package e2e

// The fault suite: four scenarios on real ourci-node processes, each on a
// fresh 3-node mesh, each followed by the one invariant checker
// (fault_check_test.go). Every task records its executions in RUNLOG.
//
// The short pass runs by default. OURCI_SOAK=1 runs a soak: 10 rounds of
// each scenario (OURCI_SOAK=N: N rounds), each with twice the work.
// OURCI_REQUIRE_FAULTS=1 turns the partition scenario's skip (no usable
// iptables) into a failure.

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultSoak returns how many rounds of each scenario to run and how much to
// multiply their work by.
func faultSoak() (rounds, scale int) {
	v := os.Getenv("OURCI_SOAK")
	if v == "" || v == "0" {
		return 1, 1
	}
	rounds = 10
	if n, err := strconv.Atoi(v); err == nil && n > 1 {
		rounds = n
	}
	return rounds, 2
}

// faultRounds runs one scenario once, or as soak rounds.
func faultRounds(t *testing.T, fn func(t *testing.T, round, scale int)) {
	rounds, scale := faultSoak()
	if rounds == 1 {
		fn(t, 1, scale)
		return
	}
	for r := 1; r <= rounds; r++ {
		t.Run(fmt.Sprintf("round%d", r), func(t *testing.T) { fn(t, r, scale) })
	}
}

// faultIPBase spreads scenarios (and concurrent test processes) over
// distinct 127.0.0.x addresses, so a partition cuts only its own mesh.
func faultIPBase(scenario int) int {
	return 10 + 12*(os.Getpid()%18) + 3*scenario
}

// faultSecs is a deterministic duration in [lo, hi] seconds for a label.
func faultSecs(label string, lo, hi float64) float64 {
	h := fnv.New32a()
	h.Write([]byte(label))
	return lo + (hi-lo)*float64(h.Sum32()%1000)/999
}

// rootJob returns a job maker: job n is a root task that spawns `children`
// leaf children through the CLI, then sleeps.
func rootJob(m *faultMesh, prefix string, children int) func(n int) (string, string) {
	return func(n int) (string, string) {
		label := fmt.Sprintf("%s%03d", prefix, n)
		var cs []float64
		for c := 1; c <= children; c++ {
			cs = append(cs, faultSecs(fmt.Sprintf("%s.c%d", label, c), 0.2, 2))
		}
		return label, m.rootCmd(label, faultSecs(label, 0.2, 1), cs)
	}
}

// ---- spawners: goroutines running `ourci-node spawn --json` ----

type faultSpawner struct {
	m     *faultMesh
	total int // jobs to spawn; 0: until stopped
	pace  time.Duration
	job   func(n int) (label, cmd string)

	// holdAt > 0: jobs after the holdAt-th wait until release is closed
	// (the fault has happened), so that spawning goes on across the fault.
	holdAt  int
	release chan struct{}

	next, rr, acked atomic.Int64
	stopped         atomic.Bool
	wg              sync.WaitGroup
	mu              sync.Mutex
	acks            []spawnAck
	unknown         []string
}

func newFaultSpawner(m *faultMesh, total int, pace time.Duration, job func(int) (string, string)) *faultSpawner {
	return &faultSpawner{m: m, total: total, pace: pace, job: job, release: make(chan struct{})}
}

// faultHappened lets held spawners go on.
func (s *faultSpawner) faultHappened() {
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

// start runs workers goroutines, each spawning jobs through the live nodes
// in turn. ctx aborts them (the test ending); stop lets them finish the
// spawn in hand.
func (s *faultSpawner) start(ctx context.Context, workers int) {
	for w := 0; w < workers; w++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for ctx.Err() == nil && !s.stopped.Load() {
				n := int(s.next.Add(1))
				if s.total > 0 && n > s.total {
					return
				}
				if s.holdAt > 0 && n > s.holdAt {
					select {
					case <-ctx.Done():
						return
					case <-s.release:
					}
				}
				label, cmd := s.job(n)
				target := -1
				for ctx.Err() == nil {
					if live := s.m.live(); len(live) > 0 {
						target = live[int(s.rr.Add(1))%len(live)]
						break
					}
					time.Sleep(20 * time.Millisecond) // every node is down: wait for a restart
				}
				if target < 0 {
					return
				}
				job, task, err := s.m.cliSpawn(ctx, target, cmd)
				s.mu.Lock()
				if err != nil {
					s.unknown = append(s.unknown, fmt.Sprintf("%s: %v", label, err))
				} else {
					s.acks = append(s.acks, spawnAck{job: job, task: task, label: label, by: "the test", at: time.Now()})
					s.acked.Add(1)
				}
				s.mu.Unlock()
				if s.pace > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(s.pace):
					}
				}
			}
		}()
	}
}

func (s *faultSpawner) stop() { s.stopped.Store(true); s.wg.Wait() }
func (s *faultSpawner) wait() { s.wg.Wait() }

func (s *faultSpawner) snapshot() ([]spawnAck, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spawnAck(nil), s.acks...), append([]string(nil), s.unknown...)
}

func (s *faultSpawner) jobIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.acks))
	for i, a := range s.acks {
		ids[i] = a.job
	}
	return ids
}

func (s *faultSpawner) ackedAfter(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.acks {
		if a.at.After(t) {
			n++
		}
	}
	return n
}

// ---- what the scenarios watch ----

// running counts the executions RUNLOG shows in progress, per node.
func (m *faultMesh) running() map[string]int {
	execs, _, _ := readRunLog(m.runLog)
	out := map[string]int{}
	for _, e := range execs {
		if e.end == 0 && taskProcessAlive(e.pid, e.task) {
			out[e.node]++
		}
	}
	return out
}

// scanTasks reads the tasks of the given jobs from the first of idx that
// answers: each task's attempt, and how many are not terminal.
func (m *faultMesh) scanTasks(ctx context.Context, idx []int, jobs []string) (attempts map[string]int, open int) {
	attempts = map[string]int{}
	seen := map[string]bool{}
	for _, id := range jobs {
		if seen[id] {
			continue
		}
		seen[id] = true
		for _, i := range idx {
			j, err := m.job(ctx, i, id)
			if err != nil {
				continue
			}
			for _, ft := range j.Tasks {
				attempts[ft.ID] = ft.Attempt
				if !terminalState(ft.State) {
					open++
				}
			}
			break
		}
	}
	return attempts, open
}

type leaderSeen struct {
	name  string
	after time.Duration
	err   error
}

// watchNewLeader polls the status of the survivors every 20 ms until one of
// them names a leader that is a survivor and not old.
func (m *faultMesh) watchNewLeader(ctx context.Context, from time.Time, survivors []int, old string, limit time.Duration) <-chan leaderSeen {
	ch := make(chan leaderSeen, 1)
	go func() {
		deadline := from.Add(limit)
		for {
			for _, i := range survivors {
				qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				st, err := m.status(qctx, i)
				cancel()
				if err == nil && st.Leader != "" && st.Leader != old && containsInt(survivors, m.index(st.Leader)) {
					ch <- leaderSeen{name: st.Leader, after: time.Since(from)}
					return
				}
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				ch <- leaderSeen{err: fmt.Errorf("no survivor named a new leader within %v", limit)}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return ch
}

type reassignSeen struct {
	task, node string
	attempt    int
	after      time.Duration
	err        error
}

// watchReassign polls the jobs on the survivors until a task's attempt rises
// above its baseline (1 for tasks not in it).
func (m *faultMesh) watchReassign(ctx context.Context, from time.Time, survivors []int, base map[string]int, jobs func() []string, limit time.Duration) <-chan reassignSeen {
	ch := make(chan reassignSeen, 1)
	go func() {
		deadline := from.Add(limit)
		done := map[string]bool{} // closed jobs whose attempts cannot change
		rr := 0
		for {
			for _, id := range jobs() {
				if done[id] {
					continue
				}
				rr++
				qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				j, err := m.job(qctx, survivors[rr%len(survivors)], id)
				cancel()
				if err != nil {
					continue
				}
				closed := j.Job.State == "closed"
				for _, ft := range j.Tasks {
					b := base[ft.ID]
					if b == 0 {
						b = 1
					}
					if ft.Attempt > b {
						ch <- reassignSeen{task: ft.ID, node: ft.Node, attempt: ft.Attempt, after: time.Since(from)}
						return
					}
					closed = closed && terminalState(ft.State)
				}
				if closed {
					done[id] = true
				}
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				ch <- reassignSeen{err: fmt.Errorf("no task's attempt rose within %v", limit)}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return ch
}

func (l leaderSeen) String() string {
	if l.err != nil {
		return l.err.Error()
	}
	return fmt.Sprintf("%v (%s)", l.after.Round(time.Millisecond), l.name)
}

func (r reassignSeen) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	where := "queued"
	if r.node != "" {
		where = "on " + r.node
	}
	return fmt.Sprintf("%v (task %s attempt %d, %s)", r.after.Round(time.Millisecond), r.task, r.attempt, where)
}

// faultSummary logs and prints one scenario's result line.
func faultSummary(t *testing.T, scenario string, round int, timings string, res faultCheckResult, sp *faultSpawner) {
	_, unknown := sp.snapshot()
	line := fmt.Sprintf("FAULT SUMMARY %s round %d: %s; %d jobs, %d tasks, %d retried, %d lost, %d executions; spawns acknowledged: %d by the CLI in the test, %d inside tasks; %d with unknown outcome; settled in %v",
		scenario, round, timings, res.jobs, res.tasks, res.retried, res.lost, res.execs, res.acked, res.childAcks, len(unknown), res.settledIn.Round(time.Millisecond))
	t.Log(line)
	fmt.Printf("%s\n", line)
	if len(unknown) > 0 {
		t.Logf("spawns with unknown outcome (not acknowledged, so not required in the ledger): %s", strings.Join(unknown, "; "))
	}
	warnings, refused := sp.m.findings(unknown)
	for _, f := range warnings {
		t.Logf("WARNING (not one of the seven invariants): %s", f)
		fmt.Printf("FAULT WARNING %s round %d: %s\n", scenario, round, f)
	}
	t.Logf("the ledger refused %d reports of superseded attempts (fencing at work)", refused)
}

// findings scans what the spawners and the tasks' spawn CLI were told, and
// the node logs, for server-side failures that no fault excuses: a spawn
// refused with 500 internal is not "outcome unknown", it is a failed write
// on a mesh that has a leader.
func (m *faultMesh) findings(unknown []string) (out []string, refused int) {
	internal := 0
	var example string
	lines := append([]string(nil), unknown...)
	if data, err := os.ReadFile(m.spawnErr); err == nil {
		lines = append(lines, strings.Split(string(data), "\n")...)
	}
	for _, l := range lines {
		if strings.Contains(l, "500 internal") {
			internal++
			example = l
		}
	}
	if internal > 0 {
		out = append(out, fmt.Sprintf("%d spawns were refused with 500 internal, e.g. %q", internal, example))
	}
	for _, n := range m.nodes {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "a batch cannot hold a batch") {
				out = append(out, fmt.Sprintf("%s: %s", n.name, l))
			}
			if strings.Contains(l, "report refused") {
				refused++
			}
		}
	}
	return out, refused
}

// restartAll restarts the given (killed) nodes on their data dirs, each
// joining the others.
func (m *faultMesh) restartAll(t *testing.T, idx []int) {
	t.Helper()
	for _, i := range idx {
		if err := m.start(i, m.gossipAddrs(m.others(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *faultMesh) mustBeHealthy(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := m.pollHealthy(m.all(), timeout); err != nil {
		t.Errorf("the mesh did not become healthy again: %v", err)
	}
}

// ---- the scenarios ----

// TestFaultLeaderKill: kill -9 the leader while four spawners push jobs
// whose root tasks spawn children (200 tasks); spawning goes on through
// the survivors; the killed node comes back on its data dir at the end.
func TestFaultLeaderKill(t *testing.T) {
	t.Parallel()
	faultRounds(t, func(t *testing.T, round, scale int) {
		m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 6, ipBase: faultIPBase(0)})
		ctx, cancel := context.WithCancel(context.Background())
		jobs := 50 * scale
		sp := newFaultSpawner(m, jobs, 0, rootJob(m, "lk", 3)) // 4 tasks a job
		sp.holdAt = jobs * 8 / 10
		t.Cleanup(sp.wait)
		t.Cleanup(cancel) // runs first: the spawners stop, then the nodes
		sp.start(ctx, 4)

		li, err := m.leaderOf(m.all())
		if err != nil {
			t.Fatal(err)
		}
		leader := m.nodes[li].name
		if err := faultPoll(90*time.Second, 20*time.Millisecond, func() (bool, string) {
			a, r := sp.acked.Load(), m.running()[leader]
			return int(a) >= jobs*6/10 && r >= 2, fmt.Sprintf("%d of %d jobs acknowledged, %d executions running on the leader %s", a, jobs, r, leader)
		}); err != nil {
			t.Fatal(err)
		}
		base, open := m.scanTasks(ctx, m.all(), sp.jobIDs())
		run := m.running()
		from := time.Now()
		m.kill(li)
		sp.faultHappened()
		t.Logf("killed the leader %s with %d tasks in the ledger not yet terminal (%d known), %d executions running (%d on %s)",
			leader, open, len(base), sum(run), run[leader], leader)
		survivors := m.live()
		lw := m.watchNewLeader(ctx, from, survivors, leader, 30*time.Second)
		rw := m.watchReassign(ctx, from, survivors, base, sp.jobIDs, 60*time.Second)
		nl, ra := <-lw, <-rw
		t.Logf("kill → new leader: %v; kill → first reassignment: %v", nl, ra)
		if nl.err != nil || ra.err != nil {
			t.Errorf("after killing the leader %s: new leader: %v; reassignment: %v", leader, nl, ra)
		}
		sp.wait()
		if n := sp.ackedAfter(from); n == 0 {
			t.Errorf("no spawn was acknowledged after the kill: spawning did not continue across it")
		} else {
			t.Logf("%d spawns acknowledged by the CLI after the kill", n)
		}
		m.restartAll(t, []int{li})
		m.mustBeHealthy(t, 45*time.Second)
		res := m.checkFaultInvariants(t, sp.acksOnly(), faultCheckOpts{settle: 90 * time.Second})
		if res.retried == 0 {
			t.Errorf("no task was retried: the kill hit no running task")
		}
		faultSummary(t, "LeaderKill", round, fmt.Sprintf("kill→new leader %v, kill→first reassignment %v", nl, ra), res, sp)
	})
}

// TestFaultWorkerKill: kill -9 a worker (not the leader) in the middle of its
// tasks; they run again elsewhere as attempt 2; it comes back at the end.
func TestFaultWorkerKill(t *testing.T) {
	t.Parallel()
	faultRounds(t, func(t *testing.T, round, scale int) {
		m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 4, ipBase: faultIPBase(1)})
		ctx, cancel := context.WithCancel(context.Background())
		jobs := 20 * scale
		sp := newFaultSpawner(m, jobs, 0, rootJob(m, "wk", 2))
		sp.holdAt = jobs * 7 / 10
		t.Cleanup(sp.wait)
		t.Cleanup(cancel)
		sp.start(ctx, 3)

		li, err := m.leaderOf(m.all())
		if err != nil {
			t.Fatal(err)
		}
		wi := (li + 1) % len(m.nodes)
		worker := m.nodes[wi].name
		if err := faultPoll(90*time.Second, 20*time.Millisecond, func() (bool, string) {
			r := m.running()[worker]
			return r >= 3, fmt.Sprintf("%d executions running on the worker %s", r, worker)
		}); err != nil {
			t.Fatal(err)
		}
		base, open := m.scanTasks(ctx, m.all(), sp.jobIDs())
		run := m.running()
		from := time.Now()
		m.kill(wi)
		sp.faultHappened()
		t.Logf("killed the worker %s (leader %s) with %d tasks not yet terminal, %d executions running (%d on %s)",
			worker, m.nodes[li].name, open, sum(run), run[worker], worker)
		survivors := m.live()
		rw := m.watchReassign(ctx, from, survivors, base, sp.jobIDs, 60*time.Second)
		ra := <-rw
		st, _ := m.status(ctx, survivors[0])
		t.Logf("kill → first reassignment: %v; leader after the kill: %s", ra, st.Leader)
		if ra.err != nil {
			t.Errorf("after killing the worker %s: %v", worker, ra)
		}
		sp.wait()
		if n := sp.ackedAfter(from); n == 0 {
			t.Errorf("no spawn was acknowledged after the kill: spawning did not continue across it")
		}
		m.restartAll(t, []int{wi})
		m.mustBeHealthy(t, 45*time.Second)
		res := m.checkFaultInvariants(t, sp.acksOnly(), faultCheckOpts{settle: 90 * time.Second})

		// Its interrupted attempts ran again as attempt 2 or later.
		execs, _, _ := readRunLog(m.runLog)
		var hit []string
		for _, e := range execs {
			if _, outlived := outlivedNode(e, m.kills(worker)); outlived && e.node == worker {
				hit = append(hit, e.String())
			}
		}
		if len(hit) == 0 {
			t.Errorf("no execution on %s was interrupted by the kill", worker)
		}
		t.Logf("%d executions on %s were interrupted by the kill: %s", len(hit), worker, strings.Join(hit, " "))
		faultSummary(t, "WorkerKill", round, fmt.Sprintf("new leader n/a (leader %s unchanged: %s), kill→first reassignment %v", m.nodes[li].name, st.Leader, ra), res, sp)
	})
}

// TestFaultLeaderPartition: cut the leader off from the others for a few
// seconds, several times, while tasks are spawned through every node.
func TestFaultLeaderPartition(t *testing.T) {
	t.Parallel()
	faultRounds(t, func(t *testing.T, round, scale int) {
		fn := newFaultNet(t)
		m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 4, ipBase: faultIPBase(2), groups: true})
		ctx, cancel := context.WithCancel(context.Background())
		cuts := 3 * scale
		var kind atomic.Int64
		root := rootJob(m, "pr", 2)
		sp := newFaultSpawner(m, 0, 250*time.Millisecond, func(n int) (string, string) {
			if kind.Add(1)%2 == 0 {
				return root(n)
			}
			label := fmt.Sprintf("pl%03d", n)
			return label, m.leafCmd(label, faultSecs(label, 0.2, 2))
		})
		t.Cleanup(sp.wait)
		t.Cleanup(cancel)
		sp.start(ctx, 2)

		var timings []string
		for c := 1; c <= cuts; c++ {
			li, err := m.leaderOf(m.all())
			if err != nil {
				t.Errorf("before cut %d: %v", c, err)
				break
			}
			leader, ip := m.nodes[li].name, m.nodes[li].ip
			// Cut while the leader runs tasks (if it gets some within 20s).
			faultPoll(20*time.Second, 20*time.Millisecond, func() (bool, string) { return m.running()[leader] >= 1, "" })
			base, open := m.scanTasks(ctx, m.all(), sp.jobIDs())
			var others []string
			for _, j := range m.others(li) {
				others = append(others, m.nodes[j].ip)
			}
			from := time.Now()
			if err := fn.cut(ip, others); err != nil {
				t.Fatal(err)
			}
			t.Logf("cut %d: leader %s (%s) cut off from %v with %d tasks not terminal, %d executions running on it", c, leader, ip, others, open, m.running()[leader])
			cctx, ccancel := context.WithCancel(ctx)
			lw := m.watchNewLeader(cctx, from, m.others(li), leader, 15*time.Second)
			rw := m.watchReassign(cctx, from, m.others(li), base, sp.jobIDs, 15*time.Second)
			var nl *leaderSeen
			var ra *reassignSeen
			// Hold the cut at least minHold (4s, every other cut 8s: longer
			// than gossip keeps talking to the dead), until the majority has
			// a new leader and has reassigned (or 8s), at most 12s.
			minHold := 4 * time.Second
			if c%2 == 0 {
				minHold = 8 * time.Second
			}
			for {
				el := time.Since(from)
				if el >= 12*time.Second || (el >= minHold && nl != nil && (ra != nil || el >= 8*time.Second)) {
					break
				}
				select {
				case v := <-lw:
					nl = &v
				case v := <-rw:
					ra = &v
				case <-time.After(50 * time.Millisecond):
				}
			}
			if err := fn.heal(); err != nil {
				t.Fatal(err)
			}
			held := time.Since(from)
			if nl == nil {
				v := <-lw
				nl = &v
			}
			if ra == nil {
				v := <-rw
				ra = &v
			}
			ccancel()
			t.Logf("cut %d held %v: cut → new leader on the majority side: %v; cut → first reassignment: %v", c, held.Round(time.Millisecond), nl, ra)
			if nl.err != nil {
				t.Errorf("cut %d: %v", c, nl)
			}
			timings = append(timings, fmt.Sprintf("cut %d: new leader %v, first reassignment %v", c, nl, ra))
			healed := time.Now()
			if err := m.pollHealthy(m.all(), 60*time.Second); err != nil {
				t.Errorf("cut %d: the mesh did not heal within 60s of the heal: %v", c, err)
				break
			}
			t.Logf("cut %d: mesh healthy again %v after the heal", c, time.Since(healed).Round(time.Millisecond))
		}
		sp.stop()
		res := m.checkFaultInvariants(t, sp.acksOnly(), faultCheckOpts{settle: 90 * time.Second})
		faultSummary(t, "LeaderPartition", round, strings.Join(timings, "; "), res, sp)
	})
}

// TestFaultRestartAll: kill -9 every node in the middle of the work, restart
// them all on their data dirs; everything settles.
func TestFaultRestartAll(t *testing.T) {
	t.Parallel()
	faultRounds(t, func(t *testing.T, round, scale int) {
		m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 4, ipBase: faultIPBase(3)})
		ctx, cancel := context.WithCancel(context.Background())
		jobs := 24 * scale
		sp := newFaultSpawner(m, jobs, 0, rootJob(m, "ra", 3))
		sp.holdAt = jobs * 7 / 10
		t.Cleanup(sp.wait)
		t.Cleanup(cancel)
		sp.start(ctx, 3)

		if err := faultPoll(90*time.Second, 20*time.Millisecond, func() (bool, string) {
			a, r := sp.acked.Load(), sum(m.running())
			return int(a) >= jobs/2 && r >= 4, fmt.Sprintf("%d of %d jobs acknowledged, %d executions running", a, jobs, r)
		}); err != nil {
			t.Fatal(err)
		}
		base, open := m.scanTasks(ctx, m.all(), sp.jobIDs())
		run := m.running()
		from := time.Now()
		for i := range m.nodes {
			m.kill(i)
		}
		t.Logf("killed every node with %d tasks not terminal, %d executions running %v", open, sum(run), run)
		sp.faultHappened()
		restart := time.Now()
		m.restartAll(t, m.all())
		lw := m.watchNewLeader(ctx, restart, m.all(), "", 30*time.Second)
		rw := m.watchReassign(ctx, restart, m.all(), base, sp.jobIDs, 60*time.Second)
		nl, ra := <-lw, <-rw
		killToRestart := restart.Sub(from)
		t.Logf("restart → leader: %v; restart → first reassignment: %v (kill → restart %v)", nl, ra, killToRestart.Round(time.Millisecond))
		if nl.err != nil || ra.err != nil {
			t.Errorf("after restarting every node: leader: %v; reassignment: %v", nl, ra)
		}
		sp.wait()
		if n := sp.ackedAfter(from); n == 0 {
			t.Errorf("no spawn was acknowledged after the kill: spawning did not continue across it")
		}
		m.mustBeHealthy(t, 45*time.Second)
		res := m.checkFaultInvariants(t, sp.acksOnly(), faultCheckOpts{settle: 90 * time.Second})
		if res.retried == 0 {
			t.Errorf("no task was retried: the kill hit no running task")
		}
		faultSummary(t, "RestartAll", round, fmt.Sprintf("kill→restart %v, restart→leader %v, restart→first reassignment %v",
			killToRestart.Round(time.Millisecond), nl, ra), res, sp)
	})
}

func (s *faultSpawner) acksOnly() []spawnAck {
	acks, _ := s.snapshot()
	return acks
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
