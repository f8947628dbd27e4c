package e2e

// The chaos suite's checker. After the schedule and restore (every fault
// ended, every node not lost running again, the mesh recovered), it runs
// the fault suite's checker (fault_check_test.go: settle, then invariants
// 1-7, with failures excused only on a full disk) and then checks:
//
//   - no execution started after its job closed, nor after its task ended,
//     nor on a node that was shutting down cleanly (after SIGTERM);
//   - two attempts of a task overlapped in time only when the earlier
//     one's node was paused (SIGSTOP) or partitioned meanwhile;
//   - every blob a task was told was stored is readable from every live
//     node, by its name in the job and by hash, byte for byte what the
//     task uploaded (one whose only copy went with a node lost or wiped
//     within 15s of the upload, before replication, and that no node's
//     collection deleted, is reported apart);
//   - every passed task's log, read through a live node, holds its whole
//     body (logs of tasks whose node was lost for good, or whose data dir
//     was wiped after they ran, are reported apart);
//   - no node log shows a panic or a fatal error, and no node exited on
//     its own;
//   - the mesh takes new work: a fresh job spawned through every live node
//     passes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// chaosCheckResult sums up the chaos checks for the summary line.
type chaosCheckResult struct {
	overlapPause, overlapPartition, overlapBad int
	afterClose, afterEnd, duringStop           int
	afterEndPause                              int // started late by a node resuming from a pause that began before the task ended
	blobs, blobReads, blobsLost                int
	logs, logsLostNode, logsLostWipe, logsSkip int
	diskFailed                                 int
}

// finish runs the checker and prints the summary.
func (r *chaosRun) finish() {
	t := r.t
	acks := r.sp.acksOnly()
	r.event("checker: waiting for the mesh to settle")
	s, res, v := r.m.faultCheck(acks, faultCheckOpts{settle: 150 * time.Second, endedOK: r.diskFailureExplained})
	r.event("checker: settled in %v (%d jobs, %d tasks)", res.settledIn.Round(time.Millisecond), res.jobs, res.tasks)
	r.mu.Lock()
	all := append([]string(nil), r.violations...)
	r.mu.Unlock()
	all = append(all, v...)
	var cr chaosCheckResult
	cr.diskFailed = res.excused
	phase := func(name string, f func() []string) {
		from := time.Now()
		v := f()
		all = append(all, v...)
		r.event("checker: %s: %d violations, in %v", name, len(v), time.Since(from).Round(10*time.Millisecond))
	}
	if s != nil {
		phase("executions", func() []string { return r.checkExecutions(s, &cr) })
		phase("blobs", func() []string { return r.checkBlobs(s, &cr) })
		phase("logs", func() []string { return r.checkLogs(s, &cr) })
	}
	phase("node logs", r.checkNodeLogs)
	phase("final work", r.finalWork)
	r.report(all)

	r.mu.Lock()
	var ops, skipped []string
	for _, k := range sortedKeys(r.ops) {
		ops = append(ops, fmt.Sprintf("%s=%d", k, r.ops[k]))
	}
	for _, k := range sortedKeys(r.skipped) {
		skipped = append(skipped, fmt.Sprintf("%s (%d)", k, r.skipped[k]))
	}
	health := strings.Join(r.healthSeen, "; ")
	r.mu.Unlock()
	if len(skipped) == 0 {
		skipped = []string{"none"}
	}
	_, unknown := r.sp.snapshot()
	line := fmt.Sprintf("CHAOS SUMMARY seed=%d: ops %s; skipped: %s; %d jobs, %d tasks, %d executions, %d retried, %d lost, %d failed on a full disk; "+
		"overlapping attempts %d (%d across a pause, %d across a partition, %d unexplained); %d started after their job closed, %d after their task ended (and %d by a node resuming from a pause), %d during their node's clean shutdown; "+
		"blobs checked %d (%d reads on %d live nodes, %d lost with their node); logs checked %d (%d lost with their node, %d with a wiped data dir, %d not required); "+
		"spawns acknowledged: %d by the test, %d inside tasks, %d unknown; settled in %v; wall %v; %d violations",
		r.cfg.seed, strings.Join(ops, " "), strings.Join(skipped, ", "), res.jobs, res.tasks, res.execs, res.retried, res.lost, cr.diskFailed,
		cr.overlapPause+cr.overlapPartition+cr.overlapBad, cr.overlapPause, cr.overlapPartition, cr.overlapBad, cr.afterClose, cr.afterEnd, cr.afterEndPause, cr.duringStop,
		cr.blobs, cr.blobReads, len(r.liveSet()), cr.blobsLost, cr.logs, cr.logsLostNode, cr.logsLostWipe, cr.logsSkip,
		res.acked, res.childAcks, len(unknown), res.settledIn.Round(time.Millisecond), time.Since(r.begin).Round(time.Second), len(all))
	t.Log(line)
	fmt.Println(line)
	if health != "" {
		t.Logf("disk-full faults: %s", health)
	}
	if len(all) > 0 {
		t.Logf("the schedule's events:\n%s", r.eventLines())
	}
}

// report fails the test with the violations, grouped by kind (the text
// before the first colon, digits aside): a few of each kind in the test
// output, every one in CHAOS-VIOLATIONS (kept with the node logs).
func (r *chaosRun) report(all []string) {
	if len(all) == 0 {
		return
	}
	file := filepath.Join(r.m.dir, "CHAOS-VIOLATIONS")
	os.WriteFile(file, []byte(strings.Join(all, "\n\n")+"\n"), 0o644)
	r.m.artifacts = append(r.m.artifacts, file)
	digits := regexp.MustCompile(`[0-9]+`)
	byKind := map[string][]string{}
	for _, msg := range all {
		kind, _, _ := strings.Cut(msg, ":")
		kind = digits.ReplaceAllString(kind, "N")
		byKind[kind] = append(byKind[kind], msg)
	}
	var kinds []string
	for _, k := range sortedKeys(byKind) {
		kinds = append(kinds, fmt.Sprintf("%s (%d)", k, len(byKind[k])))
		msgs := byKind[k]
		shown := 4
		if k == "op N" {
			shown = 12 // the schedule's own findings: few and each different
		}
		for i, msg := range msgs {
			if i == shown {
				r.t.Errorf("CHAOS VIOLATION (seed %d): %s: ... and %d more of this kind (all in CHAOS-VIOLATIONS)", r.cfg.seed, k, len(msgs)-shown)
				break
			}
			if len(msg) > 3000 {
				msg = msg[:3000] + " [...]"
			}
			r.t.Errorf("CHAOS VIOLATION (seed %d): %s", r.cfg.seed, msg)
		}
	}
	r.t.Errorf("CHAOS seed %d: %d violations by kind: %s", r.cfg.seed, len(all), strings.Join(kinds, ", "))
}

func (r *chaosRun) eventLines() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, "  "+e.line)
	}
	return strings.Join(out, "\n")
}

// diskFailureExplained excuses a task that ended failed or infra_failed on
// a node whose disk was full while it ran, with an error saying so.
func (r *chaosRun) diskFailureExplained(ft faultTask, _ []*execution) bool {
	if ft.State != "failed" && ft.State != "infra_failed" {
		return false
	}
	e := strings.ToLower(ft.Error)
	if !strings.Contains(e, "space") && !strings.Contains(e, "disk") && !strings.Contains(e, "enospc") {
		return false
	}
	from, to := ft.CreatedAt.Add(-time.Second).UnixNano(), int64(math.MaxInt64)
	if !ft.FinishedAt.IsZero() {
		to = ft.FinishedAt.Add(time.Second).UnixNano()
	}
	if r.windowDuring(ft.Node, "disk-full", from, to) == nil {
		return false
	}
	r.t.Logf("excused: %v ended %s on %s while its disk was full: %q", ft, ft.State, ft.Node, ft.Error)
	return true
}

// windowDuring returns a window of that kind on node that overlaps [from, to].
func (r *chaosRun) windowDuring(node, kind string, from, to int64) *chaosWindow {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows[node] {
		end := w.to
		if end == 0 {
			end = math.MaxInt64
		}
		if w.kind == kind && w.from <= to && end >= from {
			w := w
			return &w
		}
	}
	return nil
}

// frozenStart reports whether a start at on node came right after the
// node resumed from a pause (within 1s) that began before the task ended.
func (r *chaosRun) frozenStart(node string, at, ended int64) bool {
	w := r.windowDuring(node, "pause", at-int64(time.Second), at)
	return w != nil && w.from < ended && w.to != 0 && at-w.to <= int64(time.Second)
}

// execEnd is when an execution ended: its end line, its SIGTERM trap, its
// node's "task ended" line, or the crash of its node; MaxInt64 when
// unknown.
func (r *chaosRun) execEnd(e *execution) int64 {
	switch {
	case e.end != 0:
		return e.end
	case e.term != 0:
		return e.term
	}
	r.daemonStarts() // reads the ends too
	end := int64(math.MaxInt64)
	for _, at := range r.ends[fmt.Sprintf("%s %d %s", e.task, e.attempt, e.node)] {
		if at >= e.start {
			end = at
			break
		}
	}
	for _, k := range r.m.kills(e.node) {
		if k > e.start {
			end = min(end, k) // (a later "task ended" is a re-run's)
			break
		}
	}
	return end
}

func fmtNanos(ns int64) string {
	if ns == math.MaxInt64 {
		return "never"
	}
	return time.Unix(0, ns).Format("15:04:05.000")
}

// checkExecutions: nothing started after its job closed or its task ended;
// overlapping attempts only across a pause or partition.
func (r *chaosRun) checkExecutions(s *faultSnapshot, cr *chaosCheckResult) []string {
	var v []string
	tasks := map[string]faultTask{}
	for _, j := range s.jobs {
		for _, ft := range j.Tasks {
			tasks[ft.ID] = ft
		}
	}
	// Started after the job closed, or after the task ended: grouped by
	// job. The executions are RUNLOG's and the node logs' "task started"
	// (a re-run killed at once never writes its RUNLOG line).
	type late struct {
		at   int64
		node string
		what string
	}
	lateByJob := map[string][]late{}
	consider := func(task, job, node string, attempt int, at int64, desc string) {
		j, ok := s.jobs[job]
		ft, tok := tasks[task]
		switch {
		case ok && j.Job.State == "closed" && !j.Job.ClosedAt.IsZero() && at > j.Job.ClosedAt.UnixNano():
			cr.afterClose++
			lateByJob[job] = append(lateByJob[job], late{at, node, fmt.Sprintf("%s started %v after job %s closed (%s)",
				desc, time.Duration(at-j.Job.ClosedAt.UnixNano()).Round(time.Millisecond), job, j.Job.ClosedAt.Local().Format("15:04:05.000"))})
		case tok && terminalState(ft.State) && !ft.FinishedAt.IsZero() && at > ft.FinishedAt.UnixNano() && r.frozenStart(node, at, ft.FinishedAt.UnixNano()):
			// ARCHITECTURE.md, at-least-once: a node frozen while it was
			// about to start an attempt starts it when it resumes, and
			// stops it once its start report is refused.
			cr.afterEndPause++
		case tok && terminalState(ft.State) && !ft.FinishedAt.IsZero() && at > ft.FinishedAt.UnixNano():
			cr.afterEnd++
			lateByJob[job] = append(lateByJob[job], late{at, node, fmt.Sprintf("%s started %v after its task ended %s (%s, attempt %d on %s)",
				desc, time.Duration(at-ft.FinishedAt.UnixNano()).Round(time.Millisecond), ft.State, ft.FinishedAt.Local().Format("15:04:05.000"), ft.Attempt, ft.Node)})
		}
	}
	for _, e := range s.execs {
		consider(e.task, e.job, e.node, e.attempt, e.start, e.String())
	}
	for _, d := range r.daemonStarts() {
		recorded := false
		for _, e := range s.execs {
			if e.task == d.task && e.attempt == d.attempt && e.node == d.node && e.start >= d.at-int64(2*time.Second) && e.start <= d.at+int64(2*time.Second) {
				recorded = true
				break
			}
		}
		if !recorded {
			consider(d.task, d.job, d.node, d.attempt, d.at, fmt.Sprintf("[%s attempt %d on %s: started by the node at %s (its node log), killed before the script recorded anything]",
				d.task, d.attempt, d.node, fmtNanos(d.at)))
		}
	}
	for _, id := range sortedKeys(lateByJob) {
		ls := lateByJob[id]
		sort.Slice(ls, func(i, j int) bool { return ls[i].at < ls[j].at })
		var ex []string
		nodes := map[string]int{}
		for i, l := range ls {
			nodes[l.node]++
			if i < 4 {
				ex = append(ex, l.what)
			}
		}
		v = append(v, fmt.Sprintf("re-run: %d executions of tasks of job %s started after their job closed or their task had ended (by node: %v), e.g. %s; the schedule around the first: %s",
			len(ls), id, nodes, strings.Join(ex, "; "), r.eventsNear(ls[0].at, 8*time.Second)))
	}

	// Nothing started while its node was shutting down cleanly: a node
	// that hands its attempts back must not take new ones.
	// The node takes the shutdown when its runner says "starting no new
	// attempts" (a moment after SIGTERM): a start already under way then
	// is logged before that line, and is not one of them.
	stopped := map[string][]int64{}
	for _, f := range r.nodeLogLines(`msg="runner: starting no new attempts"`) {
		stopped[f["node"]] = append(stopped[f["node"]], logNanos(f))
	}
	var during []string
	for _, d := range r.daemonStarts() {
		if w := r.windowDuring(d.node, "stopping", d.at, d.at); w != nil {
			if i := slices.IndexFunc(stopped[d.node], func(at int64) bool { return at >= w.from && at <= w.to }); i >= 0 && d.at <= stopped[d.node][i] {
				continue // under way before the node took the shutdown
			}
			cr.duringStop++
			if len(during) < 5 {
				during = append(during, fmt.Sprintf("%s attempt %d at %s (SIGTERM at %s, exit at %s; ledger now: %v)",
					d.task, d.attempt, fmtNanos(d.at), fmtNanos(w.from), fmtNanos(w.to), tasks[d.task]))
			}
		}
	}
	if cr.duringStop > 0 {
		v = append(v, fmt.Sprintf("shutdown: %d attempts were started by nodes after they got SIGTERM, while they shut down cleanly (each is stopped at once and burns an attempt), e.g. %s",
			cr.duringStop, strings.Join(during, "; ")))
	}

	// Overlapping attempts.
	byTask := map[string][]*execution{}
	for _, e := range s.execs {
		byTask[e.task] = append(byTask[e.task], e)
	}
	var bad []string
	for _, id := range sortedKeys(byTask) {
		es := byTask[id]
		sort.Slice(es, func(i, j int) bool { return es[i].start < es[j].start })
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				a, b := es[i], es[j]
				if a.attempt == b.attempt || b.start >= r.execEnd(a) {
					continue
				}
				switch {
				case r.windowDuring(a.node, "pause", a.start, b.start) != nil:
					cr.overlapPause++
				case r.windowDuring(a.node, "partition", a.start, b.start) != nil:
					cr.overlapPartition++
				default:
					cr.overlapBad++
					if len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("%v (ended %s) and %v overlap, and %s was neither paused nor partitioned meanwhile; ledger: %v; faults around: %s",
							a, fmtNanos(r.execEnd(a)), b, a.node, tasks[id], r.eventsNear(b.start, 8*time.Second)))
					}
				}
			}
		}
	}
	if cr.overlapBad > 0 {
		v = append(v, fmt.Sprintf("overlap: %d pairs of attempts of one task ran at the same time without a pause or partition of the earlier one's node: %s",
			cr.overlapBad, strings.Join(bad, " || ")))
	}
	return v
}

// daemonStart is a "task started" line of a node's log.
type daemonStart struct {
	node, task, job string
	attempt         int
	at              int64
}

var (
	logTime  = regexp.MustCompile(`^time=(\S+) `)
	logField = regexp.MustCompile(`\b(node|task|job|attempt|hash)=(\S+)`)
)

// nodeLogLines returns the lines of every node's log that contain msg, with
// their time (0 if unreadable) and key=value fields.
func (r *chaosRun) nodeLogLines(msg string) []map[string]string {
	var out []map[string]string
	for _, n := range r.m.nodes {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.Contains(l, msg) {
				continue
			}
			f := map[string]string{"node": n.name}
			if mm := logTime.FindStringSubmatch(l); mm != nil {
				f["time"] = mm[1]
			}
			for _, mm := range logField.FindAllStringSubmatch(l, -1) {
				f[mm[1]] = mm[2]
			}
			out = append(out, f)
		}
	}
	return out
}

func logNanos(f map[string]string) int64 {
	t, err := time.Parse(time.RFC3339Nano, f["time"])
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

// daemonStarts are the attempts the nodes say they started (read once,
// by the checker, after the schedule).
func (r *chaosRun) daemonStarts() []daemonStart {
	r.startsOnce.Do(func() {
		for _, f := range r.nodeLogLines(`msg="task started"`) {
			att, _ := strconv.Atoi(f["attempt"])
			r.starts = append(r.starts, daemonStart{node: f["node"], task: f["task"], job: f["job"], attempt: att, at: logNanos(f)})
		}
		r.ends = map[string][]int64{}
		for _, f := range r.nodeLogLines(`msg="task ended"`) {
			k := f["task"] + " " + f["attempt"] + " " + f["node"]
			r.ends[k] = append(r.ends[k], logNanos(f))
		}
	})
	return r.starts
}

// restartedAfter returns when node was next stopped (and, not lost,
// started again on its aged data dir) after at, or 0.
func (r *chaosRun) restartedAfter(node string, at int64) int64 {
	r.mu.Lock()
	_, lost := r.lost[node]
	r.mu.Unlock()
	if lost {
		return 0
	}
	for _, k := range r.m.kills(node) {
		if k > at && !r.wipedAfter(node, k-int64(time.Second)) {
			return k
		}
	}
	return 0
}

// blobAck is an upload a task was told succeeded (BLOBLOG).
type blobAck struct {
	task, job, label, name, ref, node string
	attempt                           int
	at                                int64
}

func readBlobLog(path string) ([]blobAck, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var acks []blobAck
	failed := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 9 && f[0] == "ACK":
			att, _ := strconv.Atoi(f[2])
			at, _ := strconv.ParseInt(f[8], 10, 64)
			acks = append(acks, blobAck{task: f[1], attempt: att, job: f[3], label: f[4], name: f[5], ref: f[6], node: f[7], at: at})
		case len(f) > 0 && f[0] == "FAIL":
			failed++
		}
	}
	return acks, failed, nil
}

// chaosBlobContent is what the task with this key uploads.
func chaosBlobContent(key string, lines int) []byte {
	var b bytes.Buffer
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&b, "%s blob line %d\n", key, i)
	}
	return b.Bytes()
}

// getBody GETs path from node i with the cluster token.
func (m *faultMesh) getBody(ctx context.Context, i int, path string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.nodes[i].url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: GET %s: %v", m.nodes[i].name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("%s: GET %s: %s, body broke after %d bytes: %v", m.nodes[i].name, path, resp.Status, len(body), err)
	}
	return resp.StatusCode, body, nil
}

// lostAround returns how node was lost or wiped within d after at, if it was.
func (r *chaosRun) lostAround(node string, at int64, d time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.lost[node]; ok && l >= at && l-at <= int64(d) {
		return fmt.Sprintf("%s was lost for good %v after the upload", node, time.Duration(l-at).Round(time.Millisecond))
	}
	for _, w := range r.wipes[node] {
		if w >= at && w-at <= int64(d) {
			return fmt.Sprintf("%s's data dir was wiped %v after the upload", node, time.Duration(w-at).Round(time.Millisecond))
		}
	}
	return ""
}

// blobMiss is a live node's failed read of a blob, and why.
type blobMiss struct{ node, why string }

// holderWindow is how far apart the losses of a blob's two copies may be
// and still be one double failure: a dead holder is known dead only after
// gossip's suspicion (seconds), and only then does replication make a
// copy elsewhere.
const holderWindow = 15 * time.Second

// holderRe finds, in a 502's list of what each holder answered (after
// "holds the blob: sha256:HEX: ", errors joined by a JSON-escaped
// newline), every node it names, and the one of "the ledger names only
// NODE as its holder".
var holderRe = regexp.MustCompile(`(?:^|[^a-z0-9]|\\n)(n[0-9]+): |names only (n[0-9]+) as its holder`)

// lostTogether excuses a blob unreadable everywhere whose copies were all
// lost within holderWindow of each other, after it was replicated: every
// holder the ledger still names (as the reads' 502s list them) was lost
// for good, and each uploader's node was lost or wiped within the window
// of one of those losses. --blob-replicas 2 survives one failure at a
// time, not two at once. It says why, or "" when that is not what
// happened.
func (r *chaosRun) lostTogether(acks []blobAck, ms []blobMiss) string {
	holders := map[string]bool{}
	for _, m := range ms {
		_, list, ok := strings.Cut(m.why, "holds the blob: sha256:")
		if !ok {
			return "" // not a blob no holder could send
		}
		for _, g := range holderRe.FindAllStringSubmatch(list[64:], -1) {
			holders[g[1]+g[2]] = true
		}
	}
	if len(holders) == 0 {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var lost []int64
	var why []string
	for _, h := range slices.Sorted(maps.Keys(holders)) {
		l, ok := r.lost[h]
		if !ok {
			return ""
		}
		lost = append(lost, l)
		why = append(why, fmt.Sprintf("its holder %s was lost for good at %s", h, fmtNanos(l)))
	}
	for _, a := range acks {
		events := slices.Clone(r.wipes[a.node])
		if l, ok := r.lost[a.node]; ok {
			events = append(events, l)
		}
		near := false
		for _, e := range events {
			for _, l := range lost {
				if e >= a.at && (e-l <= int64(holderWindow) && l-e <= int64(holderWindow)) {
					near = true
					why = append(why, fmt.Sprintf("its uploader %s was lost or wiped at %s", a.node, fmtNanos(e)))
				}
			}
		}
		if !near {
			return ""
		}
	}
	return strings.Join(why, "; ")
}

// parallel runs fn(0..n-1) on 8 goroutines.
func parallel(n int, fn func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// checkBlobs reads every acknowledged blob from every live node.
func (r *chaosRun) checkBlobs(s *faultSnapshot, cr *chaosCheckResult) []string {
	acks, failed, err := readBlobLog(r.blobLog)
	if err != nil {
		return []string{"BLOBLOG: " + err.Error()}
	}
	var v []string
	type blob struct {
		job, name, ref string
		content        []byte
		acks           []blobAck
	}
	byName := map[string]*blob{}
	var order []string
	for _, a := range acks {
		k := a.job + " " + a.name
		b := byName[k]
		if b == nil {
			key := strings.TrimSuffix(a.name, ".bin")
			spec, ok := r.spec(key)
			if !ok || spec.blobLines == 0 {
				v = append(v, fmt.Sprintf("blob: %s uploaded %s, which its spec does not have (spec %+v)", a.task, a.name, spec))
				continue
			}
			b = &blob{job: a.job, name: a.name, ref: a.ref, content: chaosBlobContent(key, spec.blobLines)}
			byName[k] = b
			order = append(order, k)
		}
		b.acks = append(b.acks, a)
		if sum := sha256.Sum256(b.content); a.ref != "sha256:"+hex.EncodeToString(sum[:]) {
			v = append(v, fmt.Sprintf("blob: the upload of %s (job %s) by task %s attempt %d on %s was acknowledged as %s, but its content hashes to sha256:%s",
				a.name, a.job, a.task, a.attempt, a.node, a.ref, hex.EncodeToString(sum[:])))
		}
	}
	sort.Strings(order)
	live := r.liveSet()
	cr.blobs = len(order)
	var mu sync.Mutex
	misses := map[string][]blobMiss{}
	parallel(len(order)*len(live), func(n int) {
		b, i := byName[order[n/len(live)]], live[n%len(live)]
		for _, path := range []string{
			"/v1/blobs/" + url.PathEscape(b.name) + "?job=" + url.QueryEscape(b.job),
			"/v1/blobs/" + b.ref,
		} {
			var why string
			for try := 0; try < 2; try++ {
				var code int
				var body []byte
				var err error
				code, body, err = r.m.getBody(context.Background(), i, path, 20*time.Second)
				switch {
				case err != nil:
					why = err.Error()
				case code != http.StatusOK:
					why = fmt.Sprintf("%s: GET %s: %d %s", r.m.nodes[i].name, path, code, bytes.TrimSpace(body))
				case !bytes.Equal(body, b.content):
					why = fmt.Sprintf("%s: GET %s: %d bytes (sha256 %s) that differ from the %d uploaded", r.m.nodes[i].name, path, len(body), sha256Hex(body), len(b.content))
				default:
					why = ""
				}
				if why == "" || err == nil {
					break // an HTTP answer is an answer: retried are broken transfers only
				}
				time.Sleep(time.Second)
			}
			mu.Lock()
			cr.blobReads++
			if why != "" {
				misses[order[n/len(live)]] = append(misses[order[n/len(live)]], blobMiss{r.m.nodes[i].name, why})
			}
			mu.Unlock()
		}
	})
	gcDeleted := map[string][]string{} // hash → "node at time"
	for _, f := range r.nodeLogLines("blob gc: deleted an unreferenced copy") {
		gcDeleted[f["hash"]] = append(gcDeleted[f["hash"]], f["node"]+" at "+fmtNanos(logNanos(f)))
	}
	var bad []string
	none, gced := 0, 0
	for _, k := range order {
		ms := misses[k]
		if len(ms) == 0 {
			continue
		}
		b := byName[k]
		nodes := map[string]bool{}
		for _, x := range ms {
			nodes[x.node] = true
		}
		if len(nodes) == len(live) {
			// Unreadable everywhere: excused only if every uploader's node
			// was lost or wiped right after the upload, and no copy was
			// deleted by collection (then it was replicated, and the
			// collection lost it).
			var why []string
			for _, a := range b.acks {
				if w := r.lostAround(a.node, a.at, 15*time.Second); w != "" {
					why = append(why, w)
				}
			}
			if len(why) == len(b.acks) && len(gcDeleted[strings.TrimPrefix(b.ref, "sha256:")]) == 0 {
				cr.blobsLost++
				r.t.Logf("blob %s of job %s (%s) lost with its node before replication: %s", b.name, b.job, b.ref, strings.Join(why, "; "))
				continue
			}
			if w := r.lostTogether(b.acks, ms); w != "" && len(gcDeleted[strings.TrimPrefix(b.ref, "sha256:")]) == 0 {
				cr.blobsLost++
				r.t.Logf("blob %s of job %s (%s) lost with both its copies at once: %s", b.name, b.job, b.ref, w)
				continue
			}
			none++
		}
		gc := gcDeleted[strings.TrimPrefix(b.ref, "sha256:")]
		if len(gc) > 0 {
			gced++
		}
		var desc []string
		for i, x := range ms {
			if i < 3 {
				desc = append(desc, strings.Join(strings.Fields(x.why), " "))
			}
		}
		var up []string
		for _, a := range b.acks {
			up = append(up, fmt.Sprintf("task %s attempt %d on %s at %s", a.task, a.attempt, a.node, fmtNanos(a.at)))
		}
		bad = append(bad, fmt.Sprintf("%s of job %s (%s, uploaded by %s) not readable from %d of %d live nodes (%s); copies deleted by blob gc: %v",
			b.name, b.job, b.ref, strings.Join(up, ", "), len(nodes), len(live), strings.Join(desc, " | "), gc))
	}
	if len(bad) > 0 {
		shown := bad
		if len(shown) > 5 {
			shown = shown[:5]
		}
		v = append(v, fmt.Sprintf("blob: %d acknowledged blobs are not readable from every live node (%d from none; %d had copies deleted by blob gc, whose log lines name them), e.g. %s",
			len(bad), none, gced, strings.Join(shown, " || ")))
	}
	r.t.Logf("blobs: %d acknowledged uploads of %d blobs, %d uploads failed in tasks (not required)", len(acks), len(order), failed)
	return v
}

// checkLogs reads every passed task's log through a live node.
func (r *chaosRun) checkLogs(s *faultSnapshot, cr *chaosCheckResult) []string {
	var tasks []faultTask
	for _, id := range sortedKeys(s.jobs) {
		tasks = append(tasks, s.jobs[id].Tasks...)
	}
	execOf := map[string]*execution{} // "task attempt" → its last execution
	for _, e := range s.execs {
		execOf[fmt.Sprintf("%s %d", e.task, e.attempt)] = e
	}
	live := r.liveSet()
	var mu sync.Mutex
	var v, cut, unreadable []string
	unreadableOn := map[string]int{}
	parallel(len(tasks), func(n int) {
		ft := tasks[n]
		label := labelOf(ft.Args)
		spec, ok := r.spec(chaosKey(label))
		add := func(f func()) { mu.Lock(); f(); mu.Unlock() }
		if !ok {
			add(func() {
				v = append(v, fmt.Sprintf("log: task %s has label %q that no spec of the workload has", ft.ID, label))
			})
			return
		}
		if ft.State != "passed" {
			add(func() { cr.logsSkip++ })
			return
		}
		r.mu.Lock()
		_, lost := r.lost[ft.Node]
		r.mu.Unlock()
		if lost {
			add(func() { cr.logsLostNode++ })
			return
		}
		e := execOf[fmt.Sprintf("%s %d", ft.ID, ft.Attempt)]
		var code int
		var body []byte
		var err error
		for try := 0; try < 3; try++ {
			code, body, err = r.m.getBody(context.Background(), live[(n+try)%len(live)], "/v1/tasks/"+ft.ID+"/log", 10*time.Second)
			if err == nil && code != http.StatusServiceUnavailable {
				break // an answer (a 404: the node that ran it holds no log); retried: broken transfers, unreachable nodes
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || code != http.StatusOK {
			if e != nil && r.wipedAfter(ft.Node, e.start) {
				add(func() { cr.logsLostWipe++ })
				return
			}
			add(func() {
				unreadable = append(unreadable, fmt.Sprintf("%v (job %s): %d %s %v%s",
					ft, s.jobOf(ft.ID), code, strings.Join(strings.Fields(string(body)), " "), err, r.logCause(ft, e)))
				unreadableOn[ft.Node]++
			})
			return
		}
		got := logBodyLines(body, label)
		add(func() { cr.logs++ })
		if len(got) == spec.lines && isSequence(got) {
			return
		}
		what := "a garbled log"
		if isSequence(got) {
			what = fmt.Sprintf("a cut log: body lines 1-%d of %d", len(got), spec.lines)
		}
		add(func() {
			cut = append(cut, fmt.Sprintf("%v passed with %s; %d bytes of log; execution %v%s; the schedule around it: %s",
				ft, what, len(body), e, r.logCause(ft, e), r.eventsNear(execStart(e, ft), 8*time.Second)))
		})
	})
	summarize := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		sort.Strings(list)
		causes := map[string]int{}
		for _, l := range list {
			for _, c := range []string{"re-run truncated", "disk was full", "restarted on its aged data dir"} {
				if strings.Contains(l, c) {
					causes[c]++
				}
			}
		}
		shown := list
		if len(shown) > 6 {
			shown = shown[:6]
		}
		v = append(v, fmt.Sprintf("log: %d passed tasks %s (circumstances: %v); e.g. %s", len(list), what, causes, strings.Join(shown, " || ")))
	}
	summarize("have a log without their whole body", cut)
	summarize(fmt.Sprintf("have no readable log, by the node that ran them %v", unreadableOn), unreadable)
	return v
}

// logCause names what happened to a task's log after it ran: a re-run of
// its attempt on its node (which truncates the log), a full disk, a restart
// of its node on its aged data dir.
func (r *chaosRun) logCause(ft faultTask, e *execution) string {
	from := execStart(e, ft)
	var out []string
	for _, d := range r.daemonStarts() {
		if d.task == ft.ID && d.attempt == ft.Attempt && d.node == ft.Node && d.at > from+int64(time.Second) {
			out = append(out, fmt.Sprintf("%s started attempt %d again at %s, after it had passed: the re-run truncated its log", d.node, d.attempt, fmtNanos(d.at)))
			break
		}
	}
	if e != nil {
		if w := r.windowDuring(ft.Node, "disk-full", e.start, r.execEnd(e)); w != nil {
			out = append(out, fmt.Sprintf("its node's disk was full from %s to %s while it ran", fmtNanos(w.from), fmtNanos(w.to)))
		}
	}
	if k := r.restartedAfter(ft.Node, from); k != 0 {
		out = append(out, fmt.Sprintf("%s was stopped at %s and restarted on its aged data dir after the task ran", ft.Node, fmtNanos(k)))
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, "; ") + ")"
}

func execStart(e *execution, ft faultTask) int64 {
	if e != nil {
		return e.start
	}
	return ft.CreatedAt.UnixNano()
}

func (s *faultSnapshot) jobOf(task string) string {
	for id, j := range s.jobs {
		for _, ft := range j.Tasks {
			if ft.ID == task {
				return id
			}
		}
	}
	return "?"
}

// wipedAfter reports whether node's data dir was wiped after at.
func (r *chaosRun) wipedAfter(node string, at int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.wipes[node] {
		if w > at {
			return true
		}
	}
	return false
}

// logBodyLines returns the K of the log's "LABEL line K" lines, in order.
func logBodyLines(body []byte, label string) []int {
	var out []int
	prefix := label + " line "
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			if k, err := strconv.Atoi(rest); err == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

func isSequence(ks []int) bool {
	for i, k := range ks {
		if k != i+1 {
			return false
		}
	}
	return true
}

// checkNodeLogs scans every node's log for panics and fatal errors, and
// reports node processes that exited on their own.
func (r *chaosRun) checkNodeLogs() []string {
	var v []string
	for _, n := range r.m.nodes {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			if strings.Contains(lines[i], "panic:") || strings.Contains(lines[i], "fatal error:") {
				end := min(i+25, len(lines))
				v = append(v, fmt.Sprintf("node log %s: %s", n.name, strings.Join(lines[max(i-3, 0):end], "\n    ")))
				i = end
			}
		}
	}
	for _, e := range r.m.exitedEarly() {
		v = append(v, "node process: "+e)
	}
	return v
}

// finalWork spawns a fresh job through every live node (a root that
// spawns a child and uploads a blob) and waits for each to pass.
func (r *chaosRun) finalWork() []string {
	var v []string
	type fin struct {
		node      int
		job, task string
	}
	var fins []fin
	for _, i := range r.liveSet() {
		label := "fin" + r.m.nodes[i].name
		child := chaosSpec{key: label + ".c1", secs: 0.1, lines: 20}
		root := chaosSpec{key: label, secs: 0.1, lines: 20, blobLines: 30, children: 1}
		r.addTree(root, map[string][]chaosSpec{label: {child}})
		job, task, err := r.m.cliSpawn(context.Background(), i, r.cmd(label, root))
		if err != nil {
			v = append(v, fmt.Sprintf("final work: %v", err))
			continue
		}
		fins = append(fins, fin{i, job, task})
	}
	for _, f := range fins {
		name := r.m.nodes[f.node].name
		var last faultJob
		err := faultPoll(90*time.Second, 250*time.Millisecond, func() (bool, string) {
			j, err := r.m.job(context.Background(), f.node, f.job)
			if err != nil {
				return false, err.Error()
			}
			last = j
			return j.Job.State == "closed" && len(j.Tasks) == 2, fmt.Sprintf("job %s is %s/%s with %d tasks", f.job, j.Job.State, j.Job.Status, len(j.Tasks))
		})
		switch {
		case err != nil:
			v = append(v, fmt.Sprintf("final work: the job spawned through %s did not finish: %v; tasks: %v", name, err, last.Tasks))
		case last.Job.Status != "passed":
			v = append(v, fmt.Sprintf("final work: the job %s spawned through %s ended %s: %v", f.job, name, last.Job.Status, last.Tasks))
		}
	}
	r.event("final work: %d fresh jobs spawned through the live nodes, %d problems", len(fins), len(v))
	return v
}
