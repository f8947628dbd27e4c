package e2e

// The chaos suite's schedule: a seeded plan of operations, and how each is
// carried out on the mesh. Operations come one at a time: before each, the
// mesh must have recovered from the last (every live node answers, agrees
// on a leader, sees every live node alive and in the Raft configuration,
// enough voters alive, every replica caught up with the leader's index
// when recovery began). An operation that would leave the voters without
// a quorum (by the leader's own configuration) is skipped and counted.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// chaosOp is one planned operation. The target is resolved when the
// operation runs: the current leader if leader is set and the leader may
// be broken, else the pick-th (modulo) of the nodes the operation may
// break.
type chaosOp struct {
	kind   string // kill, clean, restart-all, pause, wipe, partition, disk-full, lose, add
	leader bool
	pick   uint32
	gap    time.Duration // waited before the operation (after the mesh recovered)
	hold   time.Duration // how long the fault lasts (down, paused, cut off, full)
}

func (op chaosOp) String() string {
	target := ""
	switch op.kind {
	case "restart-all", "add", "disk-full":
	default:
		if op.leader {
			target = " (the leader)"
		} else {
			target = fmt.Sprintf(" (pick %d)", op.pick%97)
		}
	}
	return fmt.Sprintf("%s%s after %.1fs, holding %.1fs", op.kind, target, op.gap.Seconds(), op.hold.Seconds())
}

// chaosKinds are the kinds of operation.
var chaosKinds = []string{"kill", "clean", "restart-all", "pause", "wipe", "partition", "disk-full", "lose", "add"}

// chaosPlan is the schedule of a seed (OURCI_CHAOS_OPS dropping kinds from
// it after it is drawn, so the rest stays as the seed has it). The short run: one of each kind
// (kill, clean, pause, partition, disk-full, wipe), three more by weight,
// shuffled; a voter lost for good early on, a new node added a little
// later; the restart-all step in the second half. A soak: operations by
// weight, a restart-all step every 25th, two losses and two additions.
func chaosPlan(cfg chaosConfig) []chaosOp {
	ops := drawChaosPlan(cfg)
	if cfg.only == nil {
		return ops
	}
	var kept []chaosOp
	for _, op := range ops {
		if cfg.only[op.kind] {
			kept = append(kept, op)
		}
	}
	return kept
}

func drawChaosPlan(cfg chaosConfig) []chaosOp {
	rng := rand.New(rand.NewPCG(cfg.seed, 0xc4a05))
	weights := []struct {
		kind string
		w    int
	}{{"kill", 4}, {"clean", 3}, {"pause", 3}, {"partition", 3}, {"disk-full", 2}, {"wipe", 2}}
	total := 0
	for _, w := range weights {
		total += w.w
	}
	weighted := func() string {
		x := rng.IntN(total)
		for _, w := range weights {
			if x < w.w {
				return w.kind
			}
			x -= w.w
		}
		panic("unreachable")
	}
	secs := func(lo, hi float64) time.Duration {
		return time.Duration((lo + (hi-lo)*rng.Float64()) * float64(time.Second))
	}
	gapLo, gapHi := 1.0, 3.0
	if cfg.soak {
		gapLo, gapHi = 2, 8
	}
	mk := func(kind string) chaosOp {
		op := chaosOp{kind: kind, pick: rng.Uint32(), gap: secs(gapLo, gapHi)}
		op.leader = rng.IntN(100) < 35
		switch kind {
		case "kill":
			op.hold = secs(1, 4)
		case "clean", "wipe":
			op.hold = secs(0.5, 2)
		case "pause", "partition":
			op.hold = secs(3, 6)
		case "disk-full":
			op.hold = secs(5, 8)
		case "restart-all":
			op.hold = secs(1, 3)
		}
		return op
	}
	insert := func(ops []chaosOp, at int, op chaosOp) []chaosOp {
		at = min(max(at, 0), len(ops))
		return slices.Insert(ops, at, op)
	}
	var ops []chaosOp
	if !cfg.soak {
		for _, w := range weights {
			ops = append(ops, mk(w.kind))
		}
		for i := 0; i < 3; i++ {
			ops = append(ops, mk(weighted()))
		}
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		lose := 1 + rng.IntN(3)
		ops = insert(ops, lose, mk("lose"))
		ops = insert(ops, lose+1+rng.IntN(3), mk("add"))
		ops = insert(ops, len(ops)/2+rng.IntN(len(ops)/2-1), mk("restart-all"))
		return ops
	}
	n := cfg.minutes * 20
	for k := 0; k < n; k++ {
		if k%25 == 24 {
			ops = append(ops, mk("restart-all"))
		} else {
			ops = append(ops, mk(weighted()))
		}
	}
	for _, span := range [][2]int{{4, 30}, {80, 200}} {
		if span[1] < n {
			at := span[0] + rng.IntN(span[1]-span[0])
			ops = insert(ops, at, mk("lose"))
			ops = insert(ops, at+1+rng.IntN(4), mk("add"))
		}
	}
	return ops
}

// runSchedule carries out the plan (a soak: until its time is up).
func (r *chaosRun) runSchedule(ctx context.Context, plan []chaosOp) {
	for k, op := range plan {
		if ctx.Err() != nil || (r.cfg.soak && time.Since(r.begin) > time.Duration(r.cfg.minutes)*time.Minute) {
			break
		}
		time.Sleep(op.gap)
		if err := r.waitRecovered(60 * time.Second); err != nil {
			r.violate("before op %d (%v): the mesh had not recovered within 60s: %v", k+1, op, err)
			r.aborted = true
		}
		if r.aborted {
			r.event("schedule ABORTED before op %d: see the violations", k+1)
			return
		}
		r.do(ctx, k+1, op)
	}
}

func (r *chaosRun) skip(k int, op chaosOp, why string) {
	r.mu.Lock()
	r.skipped[op.kind+": "+why]++
	r.mu.Unlock()
	r.event("op %d: %v SKIPPED: %s", k, op, why)
}

func (r *chaosRun) count(kind string) {
	r.mu.Lock()
	r.ops[kind]++
	r.mu.Unlock()
}

func (r *chaosRun) isLost(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.lost[r.m.nodes[i].name]
	return ok
}

func (r *chaosRun) losses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lost)
}

// do runs one operation.
func (r *chaosRun) do(ctx context.Context, k int, op chaosOp) {
	switch op.kind {
	case "restart-all":
		r.restartAll(ctx, k, op)
		return
	case "add":
		r.addNode(k, op)
		return
	case "partition":
		if r.fn == nil {
			r.skip(k, op, "iptables is unusable here")
			return
		}
	case "disk-full":
		if r.disk < 0 {
			r.skip(k, op, "no tmpfs data dir")
			return
		}
	}
	x, why := r.target(op)
	if x < 0 {
		r.skip(k, op, why)
		return
	}
	if ok, desc := r.quorumAllows(x, op.kind == "lose"); !ok {
		r.skip(k, op, fmt.Sprintf("breaking %s would leave no quorum: %s", r.m.nodes[x].name, desc))
		return
	}
	switch op.kind {
	case "kill":
		r.opKill(k, x, op)
	case "clean":
		r.opClean(k, x, op)
	case "pause":
		r.opPause(k, x, op)
	case "partition":
		r.opPartition(k, x, op)
	case "disk-full":
		r.opDiskFull(k, x, op)
	case "wipe":
		r.opWipe(k, x, op)
	case "lose":
		r.opLose(k, x, op)
	}
}

// target resolves an operation's node, or says why there is none.
func (r *chaosRun) target(op chaosOp) (int, string) {
	var cands []int
	live := r.m.live()
	for _, i := range live {
		if r.isLost(i) || r.m.isPaused(i) {
			continue
		}
		switch {
		case op.kind == "disk-full" && i != r.disk:
			continue
		case op.kind == "lose" && i == r.disk:
			continue // keep the full-disk fault possible
		}
		cands = append(cands, i)
	}
	if op.kind == "lose" {
		max := 1
		if r.cfg.soak {
			max = 2
		}
		if r.losses() >= max {
			return -1, fmt.Sprintf("already lost %d voters", r.losses())
		}
		if len(live) < 4 {
			return -1, fmt.Sprintf("only %d live nodes: keeping at least 3", len(live))
		}
	}
	if len(cands) == 0 {
		return -1, "no node it may break"
	}
	if op.leader {
		if st, li, err := r.leaderStatus(); err == nil && containsInt(cands, li) {
			_ = st
			return li, ""
		}
	}
	return cands[int(op.pick%uint32(len(cands)))], ""
}

// leaderStatus returns the status as the leader sees it, and its index.
func (r *chaosRun) leaderStatus() (faultStatus, int, error) {
	var lastErr error
	for _, i := range r.m.live() {
		if r.m.isPaused(i) {
			continue
		}
		st, err := r.m.status(context.Background(), i)
		if err != nil {
			lastErr = err
			continue
		}
		li := r.m.index(st.Leader)
		if li < 0 || !r.m.isUp(li) {
			lastErr = fmt.Errorf("%s sees leader %q", r.m.nodes[i].name, st.Leader)
			continue
		}
		lst, err := r.m.status(context.Background(), li)
		if err != nil {
			lastErr = err
			continue
		}
		return lst, li, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no live node")
	}
	return faultStatus{}, -1, lastErr
}

// quorumAllows reports whether the voters of the leader's configuration
// keep a quorum without node x (for a loss: and can then still lose one
// more for a while, so that the schedule can go on).
func (r *chaosRun) quorumAllows(x int, losing bool) (bool, string) {
	st, _, err := r.leaderStatus()
	if err != nil {
		return false, "no leader to ask: " + err.Error()
	}
	name := r.m.nodes[x].name
	voters, others := 0, 0
	var desc []string
	for _, mem := range st.Members {
		if mem.Raft != "voter" {
			continue
		}
		voters++
		if mem.Alive && mem.Name != name {
			others++
		}
		desc = append(desc, fmt.Sprintf("%s(alive=%v)", mem.Name, mem.Alive))
	}
	need := voters/2 + 1
	if losing {
		need++
	}
	return others >= need, fmt.Sprintf("voters %s: %d alive besides %s, need %d", strings.Join(desc, " "), others, name, need)
}

// chaosHealthy reports whether the nodes idx make a working mesh: each
// answers, all name the same leader (one of idx), each lists every one of
// idx alive with topic work; in the leader's configuration each of idx is
// a voter or non-voter, and the live voters are a quorum. It returns the
// statuses read.
func (m *faultMesh) chaosHealthy(idx []int) (bool, string, map[int]faultStatus) {
	sts := map[int]faultStatus{}
	if early := m.exitedEarly(); len(early) > 0 {
		return false, strings.Join(early, "; "), sts
	}
	leader := ""
	for _, i := range idx {
		st, err := m.status(context.Background(), i)
		if err != nil {
			return false, err.Error(), sts
		}
		sts[i] = st
		if st.Leader == "" {
			return false, m.nodes[i].name + " sees no leader", sts
		}
		if leader != "" && st.Leader != leader {
			return false, fmt.Sprintf("%s sees leader %s, another node %s", m.nodes[i].name, st.Leader, leader), sts
		}
		leader = st.Leader
		for _, j := range idx {
			if !slices.ContainsFunc(st.Members, func(mem faultMember) bool {
				return mem.Name == m.nodes[j].name && mem.Alive && strings.Join(mem.Topics, ",") == faultTopic
			}) {
				return false, fmt.Sprintf("%s does not list %s alive with topic %s: %s", m.nodes[i].name, m.nodes[j].name, faultTopic, membersString(st)), sts
			}
		}
	}
	li := m.index(leader)
	if !containsInt(idx, li) {
		return false, fmt.Sprintf("the leader %q is not one of the live nodes", leader), sts
	}
	lst := sts[li]
	voters, alive := 0, 0
	for _, mem := range lst.Members {
		if mem.Raft == "voter" {
			voters++
			if mem.Alive {
				alive++
			}
		}
	}
	for _, j := range idx {
		if !slices.ContainsFunc(lst.Members, func(mem faultMember) bool {
			return mem.Name == m.nodes[j].name && mem.Alive && (mem.Raft == "voter" || mem.Raft == "nonvoter")
		}) {
			return false, fmt.Sprintf("the leader %s does not have %s in its Raft configuration: %s", leader, m.nodes[j].name, membersString(lst)), sts
		}
	}
	if alive < voters/2+1 {
		return false, fmt.Sprintf("only %d of %d voters alive: %s", alive, voters, membersString(lst)), sts
	}
	return true, "", sts
}

func membersString(st faultStatus) string {
	var out []string
	for _, mem := range st.Members {
		s := fmt.Sprintf("%s(alive=%v,%s", mem.Name, mem.Alive, mem.Raft)
		if mem.Unhealthy != "" {
			s += ",unhealthy: " + mem.Unhealthy
		}
		out = append(out, s+")")
	}
	return strings.Join(out, " ")
}

// liveSet is the nodes that run (lost ones never do).
func (r *chaosRun) liveSet() []int { return r.m.live() }

// waitRecovered waits until the live nodes are healthy (chaosHealthy) and
// every one of them has applied the leader's index as it was when the
// wait began. The error lists the distinct reasons seen.
func (r *chaosRun) waitRecovered(timeout time.Duration) error {
	live := r.liveSet()
	var target uint64
	if st, _, err := r.leaderStatus(); err == nil {
		target = st.Index
	}
	start := time.Now()
	var reasons []string
	seen := map[string]bool{}
	err := faultPoll(timeout, 100*time.Millisecond, func() (bool, string) {
		ok, why, sts := r.m.chaosHealthy(live)
		if ok {
			for _, i := range live {
				if sts[i].Index < target {
					ok, why = false, fmt.Sprintf("%s has applied index %d, the leader had %d", r.m.nodes[i].name, sts[i].Index, target)
					break
				}
			}
		}
		if !ok {
			key := why
			if len(key) > 100 {
				key = key[:100]
			}
			if !seen[key] && len(reasons) < 10 {
				seen[key] = true
				reasons = append(reasons, fmt.Sprintf("[+%v] %s", time.Since(start).Round(100*time.Millisecond), why))
			}
		}
		return ok, why
	})
	if err != nil {
		return fmt.Errorf("%v\n    reasons seen: %s\n    views now: %s", err, strings.Join(reasons, "\n      "), r.m.describe())
	}
	return nil
}

// recovered waits for recovery after operation k; a mesh that does not
// recover is a violation and ends the schedule.
func (r *chaosRun) recovered(k int, what string, timeout time.Duration) {
	from := time.Now()
	if err := r.waitRecovered(timeout); err != nil {
		r.violate("op %d (%s): the mesh did not recover within %v: %v", k, what, timeout, err)
		r.aborted = true
		return
	}
	r.event("op %d (%s): mesh recovered in %v", k, what, time.Since(from).Round(10*time.Millisecond))
}

// peersFor is the gossip addresses node x joins at start: the other nodes
// that run, or (when none does) every other node not lost.
func (r *chaosRun) peersFor(x int) []string {
	var up, all []int
	for i := range r.m.nodes {
		if i == x || r.isLost(i) || !r.m.everStarted(i) {
			continue
		}
		all = append(all, i)
		if r.m.isUp(i) {
			up = append(up, i)
		}
	}
	if len(up) > 0 {
		return r.m.gossipAddrs(up)
	}
	return r.m.gossipAddrs(all)
}

// restart ages node x's data dir and starts it again on it.
func (r *chaosRun) restart(x int) error {
	if _, err := r.m.age(x, chaosAge); err != nil {
		r.violate("test harness: ageing %s's data dir: %v", r.m.nodes[x].name, err)
	}
	return r.m.start(x, r.peersFor(x))
}

func (r *chaosRun) leaderTag(x int) string {
	if st, li, err := r.leaderStatus(); err == nil && li == x {
		_ = st
		return " (the leader)"
	}
	return ""
}

func (r *chaosRun) opKill(k, x int, op chaosOp) {
	name, tag := r.m.nodes[x].name, r.leaderTag(x)
	groups, err := r.m.crash(x)
	r.event("op %d: kill -9 %s%s: a machine crash, %d task process groups killed with it", k, name, tag, groups)
	if err != nil {
		r.violate("op %d: crash of %s: %v", k, name, err)
	}
	time.Sleep(op.hold)
	if err := r.restart(x); err != nil {
		r.violate("op %d: restarting %s: %v", k, name, err)
	}
	r.event("op %d: %s restarted on its (aged) data dir after %.1fs down", k, name, op.hold.Seconds())
	r.count("kill")
	r.recovered(k, "kill "+name, 45*time.Second)
}

func (r *chaosRun) opClean(k, x int, op chaosOp) {
	name, tag := r.m.nodes[x].name, r.leaderTag(x)
	from := time.Now()
	end := r.window(name, "stopping")
	if err := r.m.stop(x, 30*time.Second); err != nil {
		r.violate("op %d: clean stop of %s: %v", k, name, err)
	}
	end()
	r.event("op %d: clean stop of %s%s (SIGTERM): exited after %v", k, name, tag, time.Since(from).Round(10*time.Millisecond))
	time.Sleep(op.hold)
	if err := r.restart(x); err != nil {
		r.violate("op %d: restarting %s: %v", k, name, err)
	}
	r.event("op %d: %s restarted on its (aged) data dir", k, name)
	r.count("clean")
	r.recovered(k, "clean restart "+name, 45*time.Second)
}

func (r *chaosRun) opPause(k, x int, op chaosOp) {
	name, tag := r.m.nodes[x].name, r.leaderTag(x)
	end := r.window(name, "pause")
	if err := r.m.pause(x); err != nil {
		end()
		r.violate("op %d: %v", k, err)
		return
	}
	r.event("op %d: SIGSTOP %s%s for %.1fs", k, name, tag, op.hold.Seconds())
	time.Sleep(op.hold)
	err := r.m.resume(x)
	end()
	if err != nil {
		r.violate("op %d: SIGCONT %s: %v", k, name, err)
	}
	r.event("op %d: SIGCONT %s", k, name)
	r.count("pause")
	r.recovered(k, "pause "+name, 45*time.Second)
}

func (r *chaosRun) opPartition(k, x int, op chaosOp) {
	name, tag := r.m.nodes[x].name, r.leaderTag(x)
	var others []string
	for i, n := range r.m.nodes {
		if i != x {
			others = append(others, n.ip)
		}
	}
	end := r.window(name, "partition")
	if err := r.fn.cut(r.m.nodes[x].ip, others); err != nil {
		end()
		r.fn.heal()
		r.violate("test harness: partition of %s: %v", name, err)
		return
	}
	r.event("op %d: partition %s%s (%s) away from the others for %.1fs", k, name, tag, r.m.nodes[x].ip, op.hold.Seconds())
	time.Sleep(op.hold)
	err := r.fn.heal()
	end()
	if err != nil {
		r.violate("test harness: healing the partition of %s: %v", name, err)
	}
	r.event("op %d: partition of %s healed", k, name)
	r.count("partition")
	r.recovered(k, "partition "+name, 45*time.Second)
}

// opDiskFull fills node x's tmpfs, keeps it full for op.hold while the
// workload goes on (longer, up to 5s, until /v1/health and the status say
// so), then frees it. A node that keeps saying it is healthy on a full
// disk, or stays unhealthy once the disk has room, is a violation.
func (r *chaosRun) opDiskFull(k, x int, op chaosOp) {
	n := r.m.nodes[x]
	tag := r.leaderTag(x)
	// Fill it while it runs tasks (if it gets one within 10s): their logs
	// are written into the full disk.
	faultPoll(10*time.Second, 50*time.Millisecond, func() (bool, string) { return r.m.running()[n.name] > 0, "" })
	running := r.m.running()[n.name]
	end := r.window(n.name, "disk-full")
	size, err := r.m.fill(x)
	if err != nil {
		end()
		r.m.unfill(x)
		r.violate("test harness: filling %s's data dir: %v", n.name, err)
		return
	}
	full := time.Now()
	r.event("op %d: disk of %s%s full (%d MiB filler, writes fail with ENOSPC) for %.1fs, with %d executions running on it", k, n.name, tag, size>>20, op.hold.Seconds(), running)
	var health503, unhealthy string
	var lastHealth string
	for time.Since(full) < op.hold || ((health503 == "" || unhealthy == "") && time.Since(full) < op.hold+5*time.Second) {
		if h, err := r.m.health(context.Background(), x); err == nil {
			lastHealth = fmt.Sprintf("%d %s", h.code, h.reason)
			if h.code == 503 && h.reason != "" && health503 == "" {
				health503 = fmt.Sprintf("after %v: %s", time.Since(full).Round(10*time.Millisecond), h.reason)
			}
		} else {
			lastHealth = err.Error()
		}
		if unhealthy == "" {
			if st, _, err := r.leaderStatus(); err == nil {
				for _, mem := range st.Members {
					if mem.Name == n.name && mem.Unhealthy != "" {
						unhealthy = fmt.Sprintf("after %v: %s", time.Since(full).Round(10*time.Millisecond), mem.Unhealthy)
					}
				}
			}
		}
		if early := r.m.exitedEarly(); len(early) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	heldFor := time.Since(full)
	execs, _, _ := readRunLog(r.m.runLog)
	started := 0
	for _, e := range execs {
		if e.node == n.name && e.start >= full.UnixNano() {
			started++
		}
	}
	if err := r.m.unfill(x); err != nil {
		r.violate("test harness: deleting the filler on %s: %v", n.name, err)
	}
	end()
	r.event("op %d: disk of %s has room again after %v full; %d executions started on it meanwhile; /v1/health: %q; status unhealthy: %q",
		k, n.name, heldFor.Round(10*time.Millisecond), started, health503, unhealthy)
	r.mu.Lock()
	r.healthSeen = append(r.healthSeen, fmt.Sprintf("op %d on %s: health %q, unhealthy %q", k, n.name, health503, unhealthy))
	r.mu.Unlock()
	if health503 == "" {
		r.violate("op %d: disk full on %s for %v: GET /v1/health never answered 503 with a reason (last answer: %s)", k, n.name, heldFor.Round(10*time.Millisecond), lastHealth)
	}
	if unhealthy == "" {
		r.violate("op %d: disk full on %s for %v: the leader's /v1/status never gave %s an \"unhealthy\" reason", k, n.name, heldFor.Round(10*time.Millisecond), n.name)
	}
	if health503 != "" {
		if err := faultPoll(30*time.Second, 200*time.Millisecond, func() (bool, string) {
			h, err := r.m.health(context.Background(), x)
			if err != nil {
				return false, err.Error()
			}
			return h.code == 200, fmt.Sprintf("%d %s", h.code, h.reason)
		}); err != nil {
			r.violate("op %d: %s's disk has room again, but /v1/health did not turn 200: %v", k, n.name, err)
		}
	}
	r.count("disk-full")
	r.recovered(k, "disk full "+n.name, 45*time.Second)
}

// opWipe crashes node x, deletes its data dir and starts it again under its
// name, joining a live node. While it catches up it must not count as a
// voter: a voter with an empty log can make the mesh forget acknowledged
// writes.
func (r *chaosRun) opWipe(k, x int, op chaosOp) {
	n := r.m.nodes[x]
	tag := r.leaderTag(x)
	groups, err := r.m.crash(x)
	if err != nil {
		r.violate("op %d: crash of %s: %v", k, n.name, err)
	}
	if err := r.m.wipe(x); err != nil {
		r.violate("test harness: wiping %s: %v", n.name, err)
	}
	r.mu.Lock()
	r.wipes[n.name] = append(r.wipes[n.name], time.Now().UnixNano())
	r.mu.Unlock()
	r.event("op %d: %s%s crashed (%d task groups) and its data dir wiped; back in %.1fs with --peer", k, n.name, tag, groups, op.hold.Seconds())
	time.Sleep(op.hold)
	if err := r.m.start(x, r.peersFor(x)); err != nil {
		r.violate("op %d: restarting %s: %v", k, n.name, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // no t.Fatal here: violations are recorded
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			// The leader's view first, then the replica's index: a voter
			// then with an index read after still far behind is behind
			// for certain (read the other way round, a slow status made
			// an index from before the promotion look current).
			st, li, err := r.leaderStatus()
			if err != nil || li == x {
				continue
			}
			h, err := r.m.health(context.Background(), x)
			if err != nil || !h.answered {
				continue // no index to judge by
			}
			for _, mem := range st.Members {
				if mem.Name == n.name && mem.Alive && mem.Raft == "voter" && h.index+promoteLagE2E < st.Index {
					r.violate("op %d: the wiped %s counted as a Raft voter in the leader's configuration while its replica was at index %d of the leader's %d (its health answered %d %q): a voter with an empty log (members: %s)",
						k, n.name, h.index, st.Index, h.code, h.reason, membersString(st))
					return
				}
			}
			if h.index+promoteLagE2E >= st.Index {
				return // caught up
			}
		}
	}()
	r.count("wipe")
	r.recovered(k, "wipe "+n.name, 60*time.Second)
	close(stop)
	wg.Wait()
}

// promoteLagE2E is how far behind the leader a voter's replica may be
// (the daemon promotes a non-voter within 64 entries of the leader).
const promoteLagE2E = 64

func (r *chaosRun) opLose(k, x int, op chaosOp) {
	n := r.m.nodes[x]
	tag := r.leaderTag(x)
	groups, err := r.m.crash(x)
	now := time.Now()
	r.mu.Lock()
	r.lost[n.name] = now.UnixNano()
	r.lastLoss = now
	r.mu.Unlock()
	r.event("op %d: %s%s LOST for good (crashed with %d task groups, never restarted)", k, n.name, tag, groups)
	if err != nil {
		r.violate("op %d: crash of %s: %v", k, n.name, err)
	}
	r.count("lose")
	r.recovered(k, "lose "+n.name, 45*time.Second)
}

// addNode starts a spare node (new name, fresh data dir) to replace a lost
// one.
func (r *chaosRun) addNode(k int, op chaosOp) {
	if r.losses() == 0 {
		r.skip(k, op, "no node was lost: nothing to replace")
		return
	}
	x := -1
	for i := chaosNodes; i < len(r.m.nodes); i++ {
		if !r.m.everStarted(i) {
			x = i
			break
		}
	}
	if x < 0 {
		r.skip(k, op, "no spare node left")
		return
	}
	if err := r.m.start(x, r.peersFor(x)); err != nil {
		r.violate("op %d: starting the new node %s: %v", k, r.m.nodes[x].name, err)
		return
	}
	r.event("op %d: added a brand-new node %s (fresh data dir)", k, r.m.nodes[x].name)
	r.count("add")
	r.recovered(k, "add "+r.m.nodes[x].name, 60*time.Second)
}

// restartAll waits for the latest big job to close, then kills -9 every
// node (machine crashes) and starts them all again on their aged data
// dirs. A soak then spawns the next big job.
func (r *chaosRun) restartAll(ctx context.Context, k int, op chaosOp) {
	r.mu.Lock()
	big := r.bigJobs[len(r.bigJobs)-1]
	r.mu.Unlock()
	from := time.Now()
	var state string
	err := faultPoll(240*time.Second, 500*time.Millisecond, func() (bool, string) {
		for _, i := range r.m.live() {
			j, err := r.m.job(context.Background(), i, big)
			if err != nil {
				state = err.Error()
				continue
			}
			open := 0
			for _, ft := range j.Tasks {
				if !terminalState(ft.State) {
					open++
				}
			}
			state = fmt.Sprintf("big job %s is %s with %d tasks, %d not terminal", big, j.Job.State, len(j.Tasks), open)
			return j.Job.State == "closed", state
		}
		return false, state
	})
	if err != nil {
		r.violate("op %d: the big job %s did not close within 240s (%v); restarting every node anyway", k, big, err)
	} else {
		r.event("op %d: %s (waited %v)", k, state, time.Since(from).Round(100*time.Millisecond))
	}
	var names []string
	groups := 0
	for _, i := range r.m.live() {
		g, err := r.m.crash(i)
		if err != nil {
			r.violate("op %d: crash of %s: %v", k, r.m.nodes[i].name, err)
		}
		groups += g
		names = append(names, r.m.nodes[i].name)
	}
	r.event("op %d: RESTART ALL: kill -9 of every node (%s; %d task groups) for %.1fs", k, strings.Join(names, " "), groups, op.hold.Seconds())
	time.Sleep(op.hold)
	for _, name := range names {
		if err := r.restart(r.m.index(name)); err != nil {
			r.violate("op %d: restarting %s: %v", k, name, err)
		}
	}
	r.event("op %d: every node restarted on its aged data dir", k)
	r.count("restart-all")
	r.recovered(k, "restart all", 90*time.Second)
	if r.cfg.soak && !r.aborted {
		if _, err := r.spawnBig(ctx); err != nil {
			r.violate("op %d: could not spawn the next big job: %v", k, err)
		}
	}
}

// restore ends every fault still on, restarts every node that is down and
// not lost, and waits for the mesh to recover.
func (r *chaosRun) restore() {
	if r.fn != nil {
		if err := r.fn.heal(); err != nil {
			r.violate("test harness: heal: %v", err)
		}
	}
	for i := range r.m.nodes {
		r.m.resume(i)
	}
	if r.disk >= 0 {
		r.m.unfill(r.disk)
	}
	for i, n := range r.m.nodes {
		if !r.m.isUp(i) && !r.isLost(i) && r.m.everStarted(i) {
			if err := r.restart(i); err != nil {
				r.violate("restore: restarting %s: %v", n.name, err)
			}
		}
	}
	if err := r.waitRecovered(90 * time.Second); err != nil {
		r.violate("restore: the mesh did not recover within 90s of the end of the schedule: %v", err)
		return
	}
	r.event("restore: mesh recovered")
	r.checkMembership()
}

// checkMembership: once --dead-server-after (10s) has passed since the last
// loss or wipe, no dead server is a voter, and min(5, live nodes) live
// nodes vote.
func (r *chaosRun) checkMembership() {
	r.mu.Lock()
	last := r.lastLoss
	for _, ws := range r.wipes {
		for _, w := range ws {
			if t := time.Unix(0, w); t.After(last) {
				last = t
			}
		}
	}
	r.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	if d := last.Add(45 * time.Second); d.After(deadline) {
		deadline = d
	}
	live := r.liveSet()
	want := min(5, len(live))
	var why string
	for {
		st, _, err := r.leaderStatus()
		if err != nil {
			why = err.Error()
		} else {
			var dead []string
			alive := 0
			for _, mem := range st.Members {
				if mem.Raft != "voter" {
					continue
				}
				if mem.Alive {
					alive++
				} else {
					dead = append(dead, mem.Name)
				}
			}
			if len(dead) == 0 && alive == want {
				r.event("membership: %d live voters, no dead ones (%s)", alive, membersString(st))
				return
			}
			why = fmt.Sprintf("dead voters %v, %d live voters of %d live nodes (want %d): %s", dead, alive, len(live), want, membersString(st))
		}
		if time.Now().After(deadline) {
			since := "no node was lost or wiped"
			if !last.IsZero() {
				since = fmt.Sprintf("%v after the last loss or wipe", time.Since(last).Round(time.Second))
			}
			r.violate("membership: dead voters are not replaced: %s, %s (want dead servers removed after --dead-server-after, 10s, and live non-voters promoted up to 5 voters)", why, since)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}
