package e2e

// TestChaos: a seeded, randomized schedule of faults applied to a mesh of
// five real ourci-node processes while a workload runs, then one checker
// for what an operator running a mesh for months must be able to trust.
//
//   - the schedule (chaos_schedule_test.go): kill -9 (a machine crash: the
//     node and its tasks), clean restarts (SIGTERM), restart of every node,
//     SIGSTOP/SIGCONT, wiping a node's data dir and rejoining it under its
//     name, partitions (iptables), a full disk (the data dir of one node is
//     a small tmpfs of its own), losing a voter for good and adding a brand
//     new node. At most one node is broken at a time (all of them in the
//     restart-all step), and never more than the Raft voters can lose.
//   - the workload (this file): jobs with random spawn trees (depth up to
//     3, 0-3 children a task, spawned through the CLI inside tasks), tasks
//     that record their executions (RUNLOG), print a log body derived from
//     their label and sometimes upload a blob derived from it (BLOBLOG);
//     plus one big job of 1,111 short tasks that closes before the
//     restart-all step.
//   - the checker (chaos_check_test.go): the fault suite's seven invariants
//     and: nothing ran after its job closed or its task ended, overlapping
//     attempts only across a pause or partition, every blob readable from
//     every live node, every log readable and whole, tasks failed only on
//     a full disk and saying so, /v1/health telling a full disk, dead
//     voters replaced, fresh work accepted through every node at the end,
//     no node exited on its own or panicked.
//
// OURCI_CHAOS_SEED=N replays the schedule and workload shape of seed N
// (printed at the start and in every failure). OURCI_CHAOS_OPS=kill,pause
// keeps only those kinds of operation in the plan (to chase one finding). OURCI_SOAK=1 runs the
// schedule for 20 minutes (OURCI_SOAK_MINUTES=N: N minutes) with a big
// job and a restart-all step every 25 operations; give go test a -timeout
// of the minutes plus 10. The short run takes about 2 minutes.
//
//	go test -race -count=1 -run 'TestChaos$' -v ./e2e/
//	OURCI_CHAOS_SEED=123 go test -race -count=1 -run 'TestChaos$' -v ./e2e/
//	OURCI_SOAK=1 go test -race -count=1 -timeout 40m -run 'TestChaos$' -v ./e2e/ OURCI_REQUIRE_FAULTS=1
// makes a fault that cannot run here (no iptables, no tmpfs) a failure.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosConfig is one run's seed and length.
type chaosConfig struct {
	seed    uint64
	soak    bool
	minutes int             // soak: how long the schedule runs
	only    map[string]bool // OURCI_CHAOS_OPS: run only these kinds of operation (nil: all)
}

func chaosConfigFromEnv(t *testing.T) chaosConfig {
	c := chaosConfig{seed: uint64(time.Now().UnixNano()) % 1_000_000_000}
	if v := os.Getenv("OURCI_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("OURCI_CHAOS_SEED=%q: %v", v, err)
		}
		c.seed = s
	}
	if v := os.Getenv("OURCI_CHAOS_OPS"); v != "" {
		c.only = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(chaosKinds, k) {
				t.Fatalf("OURCI_CHAOS_OPS=%q: unknown kind %q (kinds: %s)", v, k, strings.Join(chaosKinds, ","))
			}
			c.only[k] = true
		}
	}
	if v := os.Getenv("OURCI_SOAK"); v != "" && v != "0" {
		c.soak, c.minutes = true, 20
		if v := os.Getenv("OURCI_SOAK_MINUTES"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("OURCI_SOAK_MINUTES=%q: want a number of minutes", v)
			}
			c.minutes = n
		}
	}
	return c
}

// chaosIPBase spreads concurrent test processes over 127.0.1.x: 7 addresses
// each (5 nodes, 2 spares).
func chaosIPBase() int { return 8 * (os.Getpid() % 30) }

const (
	chaosNodes  = 5
	chaosSpares = 2
	chaosSlots  = 3
	// chaosMaxAttempts is high enough that no task runs out of attempts to
	// faults that come one at a time: a lost task is a violation.
	chaosMaxAttempts = 8
	chaosTmpfsMiB    = 128
	chaosAge         = 2 * time.Hour // how old a restarted node's files are made
)

// chaosSpec is one task of the workload, by its key: its label without the
// attempts (j0007.c2.c1 for j0007.a1.c2.a3.c1).
type chaosSpec struct {
	key       string
	secs      float64
	lines     int // log body: lines "LABEL line K", K = 1..lines
	blobLines int // 0: no blob; else KEY.bin holds "KEY blob line K", K = 1..blobLines
	children  int
}

func (s chaosSpec) args() string {
	return fmt.Sprintf("%.2f %d %d %d", s.secs, s.lines, s.blobLines, s.children)
}

// chaosWindow is a span during which a node was unreachable (paused,
// partitioned) or its disk was full.
type chaosWindow struct {
	kind     string // pause, partition, disk-full, stopping (SIGTERM to exit)
	from, to int64  // unix nanos; to 0: still on
}

// chaosRun is one TestChaos run: the mesh, the schedule's record and what
// the checker needs to know about the faults.
type chaosRun struct {
	t     *testing.T
	cfg   chaosConfig
	m     *faultMesh
	fn    *faultNet // nil: partitions cannot run here
	sp    *faultSpawner
	begin time.Time
	disk  int // the node whose data dir is a tmpfs; -1: none

	// files in m.dir
	tree, blobLog, blobErr, blobTmp, script, eventLog string

	mu         sync.Mutex
	specs      map[string]chaosSpec // by key
	events     []chaosEvent
	violations []string
	ops        map[string]int // performed, by kind
	skipped    map[string]int // planned but not run, by kind and reason
	windows    map[string][]chaosWindow
	lost       map[string]int64   // node lost for good → when
	wipes      map[string][]int64 // node → when its data dir was wiped
	bigJobs    []string           // the big jobs' IDs
	aborted    bool               // the schedule stopped early (see violations)
	lastLoss   time.Time
	healthSeen []string // what /v1/health said during disk-full faults
	startsOnce sync.Once
	starts     []daemonStart      // the nodes' "task started" lines, for the checker
	ends       map[string][]int64 // their "task ended" lines: "TASK ATTEMPT NODE" → times
}

var chaosKeyAttempt = regexp.MustCompile(`\.a[0-9]+`)

// chaosKey is a label without its attempts.
func chaosKey(label string) string { return chaosKeyAttempt.ReplaceAllString(label, "") }

func newChaosRun(t *testing.T, cfg chaosConfig, m *faultMesh, fn *faultNet, disk int) *chaosRun {
	r := &chaosRun{t: t, cfg: cfg, m: m, fn: fn, disk: disk, begin: time.Now(),
		specs: map[string]chaosSpec{}, ops: map[string]int{}, skipped: map[string]int{},
		windows: map[string][]chaosWindow{}, lost: map[string]int64{}, wipes: map[string][]int64{}}
	r.tree = filepath.Join(m.dir, "TREE")
	r.blobLog = filepath.Join(m.dir, "BLOBLOG")
	r.blobErr = filepath.Join(m.dir, "blob-errors.log")
	r.blobTmp = filepath.Join(m.dir, "blobsrc")
	r.script = filepath.Join(m.dir, "chaos.sh")
	r.eventLog = filepath.Join(m.dir, "CHAOSLOG")
	for _, f := range []string{r.tree, r.blobLog, r.blobErr, r.eventLog} {
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(r.blobTmp, 0o777); err != nil {
		t.Fatal(err)
	}
	m.artifacts = append(m.artifacts, r.tree, r.blobLog, r.blobErr, r.eventLog)
	r.writeScript(t)
	return r
}

// writeScript writes chaos.sh LABEL SECS LINES BLOBLINES CHILDREN. It
// records its start in RUNLOG (and "term" from its SIGTERM trap, or its
// end), prints the first half of its log body, spawns its children through
// the CLI (each child's spec from TREE, each acknowledged spawn appended to
// SPAWNLOG; the trap ignores further SIGTERMs, so that its date survives
// them; a record whose date was killed anyway is not written), uploads its blob if it has one (the file is made outside the
// node's data dir, so a full disk cannot cut it; the acknowledged ref goes
// to BLOBLOG), sleeps, prints the second half and records its end. It
// exits 0 whatever the CLI said. Lines are appended in one write each.
func (r *chaosRun) writeScript(t *testing.T) {
	m := r.m
	script := `label=$1; secs=$2; lines=$3; blob=$4; nchild=$5
rec() { now=$(date +%s%N); [ -n "$now" ] && echo "$OURCI_TASK $OURCI_ATTEMPT $OURCI_NODE_NAME $1 $OURCI_JOB $label $$ $now" >>` + m.runLog + `; }
rec start
trap 'trap "" TERM; rec term; exit 143' TERM
half=$((lines / 2))
i=1
while [ $i -le $half ]; do echo "$label line $i"; i=$((i+1)); done
if [ "$nchild" -gt 0 ] || [ "$blob" -gt 0 ]; then
	key=$(echo "$label" | sed 's/\.a[0-9][0-9]*//g')
fi
if [ "$nchild" -gt 0 ]; then
	specs=$(awk -v k="$key" '$1 == k { print $2, $3, $4, $5, $6 }' ` + r.tree + `)
	printf '%s\n' "$specs" | while read -r c cs cl cb cn; do
		[ -n "$c" ] || continue
		child="$label.a$OURCI_ATTEMPT.c$c"
		if out=$(ourci-node spawn --json -t ` + faultTopic + ` -- "sh ` + r.script + ` $child $cs $cl $cb $cn" </dev/null 2>>` + m.spawnErr + `); then
			echo "ACK $OURCI_TASK $OURCI_ATTEMPT $child $out" >>` + m.spawnLog + `
		else
			echo "FAIL $OURCI_TASK $OURCI_ATTEMPT $child $?" >>` + m.spawnLog + `
		fi
	done
fi
if [ "$blob" -gt 0 ]; then
	f=` + r.blobTmp + `/$OURCI_TASK.$OURCI_ATTEMPT.$$
	j=1
	while [ $j -le $blob ]; do echo "$key blob line $j"; j=$((j+1)); done >"$f"
	if ref=$(ourci-node blob put "$f" --name "$key.bin" </dev/null 2>>` + r.blobErr + `); then
		echo "ACK $OURCI_TASK $OURCI_ATTEMPT $OURCI_JOB $label $key.bin $ref $OURCI_NODE_NAME $(date +%s%N)" >>` + r.blobLog + `
	else
		echo "FAIL $OURCI_TASK $OURCI_ATTEMPT $OURCI_JOB $label $key.bin $? $OURCI_NODE_NAME $(date +%s%N)" >>` + r.blobLog + `
	fi
	rm -f "$f"
fi
[ "$secs" = 0.00 ] || sleep "$secs"
while [ $i -le $lines ]; do echo "$label line $i"; i=$((i+1)); done
rec end
`
	if err := os.WriteFile(r.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// cmd is the host command of a task with this label and spec.
func (r *chaosRun) cmd(label string, s chaosSpec) string {
	return fmt.Sprintf("sh %s %s %s", r.script, label, s.args())
}

// addTree records a job's specs and appends the lines of its non-root
// tasks to TREE ("PARENTKEY INDEX SECS LINES BLOBLINES CHILDREN"), in one
// write, before the job is spawned.
func (r *chaosRun) addTree(root chaosSpec, children map[string][]chaosSpec) {
	var b strings.Builder
	var walk func(s chaosSpec)
	walk = func(s chaosSpec) {
		for i, c := range children[s.key] {
			fmt.Fprintf(&b, "%s %d %s\n", s.key, i+1, c.args())
			walk(c)
		}
	}
	walk(root)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.specs[root.key] = root
	for _, cs := range children {
		for _, c := range cs {
			r.specs[c.key] = c
		}
	}
	f, err := os.OpenFile(r.tree, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString(b.String())
		f.Close()
	}
	if err != nil {
		r.violations = append(r.violations, "test harness: cannot write TREE: "+err.Error())
	}
}

func (r *chaosRun) spec(key string) (chaosSpec, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.specs[key]
	return s, ok
}

// randomJob is job n of the workload: a random tree, the same for a seed.
// Tasks at depth 0-2 get 0-3 children; log bodies of 20-200 lines; a
// quarter of the tasks upload a blob of 20-3,000 lines.
func (r *chaosRun) randomJob(n int) (string, string) {
	rng := rand.New(rand.NewPCG(r.cfg.seed, uint64(n)))
	children := map[string][]chaosSpec{}
	var mk func(key string, depth int) chaosSpec
	mk = func(key string, depth int) chaosSpec {
		s := chaosSpec{key: key, secs: 0.2 + 1.6*rng.Float64(), lines: 20 + rng.IntN(181)}
		if rng.IntN(4) == 0 {
			s.blobLines = 20 + rng.IntN(2981)
		}
		if depth < 3 {
			s.children = rng.IntN(4)
		}
		for c := 1; c <= s.children; c++ {
			children[key] = append(children[key], mk(fmt.Sprintf("%s.c%d", key, c), depth+1))
		}
		return s
	}
	label := fmt.Sprintf("j%04d", n)
	root := mk(label, 0)
	r.addTree(root, children)
	return label, r.cmd(label, root)
}

// bigJob is the k-th big job: a root with 10 children with 10 children
// with 10 leaves each (1,111 tasks), all short; one leaf in 50 uploads a
// small blob.
func (r *chaosRun) bigJob(k int) (string, string) {
	label := fmt.Sprintf("big%d", k)
	children := map[string][]chaosSpec{}
	node := func(key string, n int) chaosSpec { return chaosSpec{key: key, lines: 20, children: n} }
	root := node(label, 10)
	leaf := 0
	for a := 1; a <= 10; a++ {
		ka := fmt.Sprintf("%s.c%d", label, a)
		children[label] = append(children[label], node(ka, 10))
		for b := 1; b <= 10; b++ {
			kb := fmt.Sprintf("%s.c%d", ka, b)
			children[ka] = append(children[ka], node(kb, 10))
			for c := 1; c <= 10; c++ {
				leaf++
				s := node(fmt.Sprintf("%s.c%d", kb, c), 0)
				if leaf%50 == 0 {
					s.blobLines = 40
				}
				children[kb] = append(children[kb], s)
			}
		}
	}
	r.addTree(root, children)
	return label, r.cmd(label, root)
}

// spawnBig spawns the next big job through a live node, retrying (under a
// new label, so that a spawn whose outcome was unknown cannot land twice
// under one) until one is acknowledged.
func (r *chaosRun) spawnBig(ctx context.Context) (string, error) {
	r.mu.Lock()
	k := len(r.bigJobs) + 1
	r.mu.Unlock()
	var last error
	for try := 0; try < 5; try++ {
		label, cmd := r.bigJob(k*10 + try)
		live := r.m.live()
		if len(live) == 0 {
			return "", fmt.Errorf("no live node")
		}
		job, task, err := r.m.cliSpawn(ctx, live[try%len(live)], cmd)
		if err != nil {
			last = err
			continue
		}
		r.mu.Lock()
		r.bigJobs = append(r.bigJobs, job)
		r.mu.Unlock()
		r.sp.mu.Lock()
		r.sp.acks = append(r.sp.acks, spawnAck{job: job, task: task, label: label, by: "the test", at: time.Now()})
		r.sp.mu.Unlock()
		r.event("spawned big job %s (%s, 1111 tasks)", job, label)
		return job, nil
	}
	return "", last
}

type chaosEvent struct {
	at   time.Time
	line string
}

// event records what the schedule did, with the time since the start.
func (r *chaosRun) event(format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("[+%6.1fs %s] %s", now.Sub(r.begin).Seconds(), now.Format("15:04:05.000"), fmt.Sprintf(format, args...))
	r.mu.Lock()
	r.events = append(r.events, chaosEvent{now, line})
	r.mu.Unlock()
	if f, err := os.OpenFile(r.eventLog, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
	r.t.Log("CHAOS " + line)
}

// violate records a violation found during the schedule.
func (r *chaosRun) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.violations = append(r.violations, msg)
	r.mu.Unlock()
	r.event("VIOLATION: %s", msg)
}

func (r *chaosRun) window(node, kind string) func() {
	r.mu.Lock()
	r.windows[node] = append(r.windows[node], chaosWindow{kind: kind, from: time.Now().UnixNano()})
	i := len(r.windows[node]) - 1
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.windows[node][i].to = time.Now().UnixNano()
		r.mu.Unlock()
	}
}

// eventsNear returns the schedule's events within d of the unix-nano time at.
func (r *chaosRun) eventsNear(at int64, d time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if off := e.at.Sub(time.Unix(0, at)); off > -d && off < d && !strings.Contains(e.line, "the plan:") {
			out = append(out, e.line)
		}
	}
	if len(out) == 0 {
		return "(no event of the schedule within " + d.String() + ")"
	}
	return strings.Join(out, " | ")
}

func TestChaos(t *testing.T) {
	t.Parallel()
	cfg := chaosConfigFromEnv(t)
	mode := "short"
	if cfg.soak {
		mode = fmt.Sprintf("soak, %d minutes", cfg.minutes)
	}
	if cfg.only != nil {
		mode += ", only " + strings.Join(sortedKeys(cfg.only), ",")
	}
	fmt.Printf("CHAOS seed=%d (%s; replay with OURCI_CHAOS_SEED=%d)\n", cfg.seed, mode, cfg.seed)
	t.Logf("CHAOS seed=%d (%s; replay with OURCI_CHAOS_SEED=%d)", cfg.seed, mode, cfg.seed)
	need := 7 * time.Minute
	if cfg.soak {
		need = time.Duration(cfg.minutes)*time.Minute + 10*time.Minute
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < need {
		t.Fatalf("this run needs about %v: run go test with -timeout %v or more", need, need.Round(time.Minute))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("CHAOS FAILED with seed=%d: replay with OURCI_CHAOS_SEED=%d go test -race -count=1 -run 'TestChaos$' -v ./e2e/", cfg.seed, cfg.seed)
		}
	})
	// Five nodes weigh two meshes: take a second slot (newFaultMesh takes one).
	meshSlots <- struct{}{}
	t.Cleanup(func() { <-meshSlots })

	disk := int(cfg.seed % chaosNodes) // the node whose data dir is a small tmpfs
	m := newFaultMesh(t, faultMeshOpts{nodes: chaosNodes, spare: chaosSpares, slots: chaosSlots, maxAttempts: chaosMaxAttempts,
		ipPrefix: "127.0.1", ipBase: chaosIPBase(), groups: true, tmpfsMiB: map[int]int{disk: chaosTmpfsMiB}})
	require := os.Getenv("OURCI_REQUIRE_FAULTS") == "1"
	if !m.nodes[disk].tmpfs {
		msg := "CHAOS: the disk-full fault will NOT RUN: no tmpfs for " + m.nodes[disk].name + " (needs root)"
		fmt.Fprintln(os.Stderr, msg)
		if require {
			t.Fatal(msg)
		}
		disk = -1
	}
	fn, err := setupFaultNet(t, "c")
	if err != nil {
		msg := "CHAOS: partitions will NOT RUN: iptables is unusable here: " + err.Error()
		fmt.Fprintln(os.Stderr, msg)
		if require {
			t.Fatal(msg)
		}
		fn = nil
	}
	r := newChaosRun(t, cfg, m, fn, disk)
	plan := chaosPlan(cfg)
	var lines []string
	for i, op := range plan {
		if i < 40 {
			lines = append(lines, fmt.Sprintf("  %2d. %v", i+1, op))
		}
	}
	if len(plan) > 40 {
		lines = append(lines, fmt.Sprintf("  ... %d more", len(plan)-40))
	}
	diskName := "none"
	if disk >= 0 {
		diskName = m.nodes[disk].name
	}
	r.event("mesh of %d nodes up (tmpfs data dir: %s); the plan:\n%s", chaosNodes, diskName, strings.Join(lines, "\n"))

	ctx, cancel := context.WithCancel(context.Background())
	r.sp = newFaultSpawner(m, 0, 2*time.Second, r.randomJob)
	t.Cleanup(r.sp.wait)
	t.Cleanup(cancel) // runs first: the spawners stop, then the nodes
	r.sp.start(ctx, 2)
	if _, err := r.spawnBig(ctx); err != nil {
		t.Fatalf("seed %d: could not spawn the big job: %v", cfg.seed, err)
	}

	r.runSchedule(ctx, plan)
	r.sp.stop()
	r.event("schedule over: %d jobs acknowledged to the test's spawners; restoring the mesh", r.sp.acked.Load())
	r.restore()
	r.finish()
}
