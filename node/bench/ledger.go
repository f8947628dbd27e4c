package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// ledgerMeasure builds a ledger of finished tasks through State.Apply (the
// pure state machine: no Raft, no disk) and measures its heap, its snapshot
// and how long the status of a large job takes to build.
func (r *run) ledgerMeasure(ctx context.Context) error {
	n, jobN := r.o.LedgerTasks, r.o.JobTasks
	r.progress("ledger: %d finished tasks; status of a %d-task job", n, jobN)
	before, settled := settledHeap(ctx)

	b := &ledgerBuilder{s: raftfsm.NewState(), at: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	t0 := time.Now()
	const perJob = 10 // a pipeline: a root task and 9 children
	for b.tasks < n {
		if err := b.job(min(perJob, n-b.tasks)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	build := time.Since(t0)
	entries, jobs := b.idx, b.jobs
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	live := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	var snap bytes.Buffer
	t0 = time.Now()
	if err := raftfsm.WriteSnapshot(&snap, b.s, b.idx); err != nil {
		return err
	}
	snapWrite := time.Since(t0)
	snapSize := snap.Len()
	t0 = time.Now()
	restored, _, err := raftfsm.ReadSnapshot(bytes.NewReader(snap.Bytes()))
	if err != nil {
		return err
	}
	snapRead := time.Since(t0)
	if len(restored.Tasks) != len(b.s.Tasks) {
		return fmt.Errorf("snapshot restored %d tasks, want %d", len(restored.Tasks), len(b.s.Tasks))
	}
	restored = nil
	snap = bytes.Buffer{}

	// One big job, in the same ledger: the root and jobN-1 children.
	if err := b.job(jobN); err != nil {
		return err
	}
	job := b.lastJob
	var withJSON, build0, compact dist
	rounds := 200
	if jobN*rounds > 400_000 {
		rounds = max(20, 400_000/jobN)
	}
	var size int
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		d := jobDetail(b.s, job)
		build0 = append(build0, time.Since(t0))
		t0 = time.Now()
		d = jobDetail(b.s, job)
		cw := &countWriter{}
		enc := json.NewEncoder(cw)
		enc.SetIndent("", "  ") // as the API writes it
		if err := enc.Encode(d); err != nil {
			return err
		}
		withJSON = append(withJSON, time.Since(t0))
		size = cw.n
		t0 = time.Now()
		if err := json.NewEncoder(&countWriter{}).Encode(jobDetail(b.s, job)); err != nil {
			return err
		}
		compact = append(compact, time.Since(t0))
	}
	// The leader's retention loop walks every job (and blob) after every
	// apply; time the same walk over this ledger.
	var scan dist
	for i := 0; i < 50; i++ {
		t0 := time.Now()
		closed := 0
		for _, id := range b.s.JobOrder {
			if j := b.s.Jobs[id]; j.State == raftfsm.JobClosed && !j.Expired && j.ClosedAt.Before(b.at) {
				closed++
			}
		}
		scan = append(scan, time.Since(t0))
		if closed == 0 {
			return fmt.Errorf("no closed jobs in the ledger")
		}
	}
	runtime.KeepAlive(b)

	const M = MLedger
	perTask := float64(heap) / float64(n)
	r.row(Row{Key: "ledger_heap_mib", Measure: fmt.Sprintf("ledger heap in use, %dk finished tasks", n/1000), Unit: "MiB", OurCI: float64(heap) / (1 << 20), Target: "-", Result: "info"})
	r.row(Row{Key: "ledger_snapshot_mib", Measure: fmt.Sprintf("ledger snapshot, %dk finished tasks", n/1000), Unit: "MiB", OurCI: float64(snapSize) / (1 << 20), Target: "-", Result: "info"})
	p50 := withJSON.pct(0.5)
	r.row(Row{Key: "job_status_p50_ms", Measure: fmt.Sprintf("status of a %d-task job, p50", jobN), Unit: "ms", OurCI: ms(p50), Target: "-", Result: "info"})
	r.note(M, "%d tasks in %d jobs of %d (spawn, start, finish each: %d entries) applied in %s: %.1f µs per command", n, jobs, perJob, entries, build.Round(time.Millisecond), float64(build.Microseconds())/float64(entries))
	r.note(M, "heap in use +%.1f MiB (live objects +%.1f MiB): %.0f bytes per finished task, with its job share and idempotency key", float64(heap)/(1<<20), float64(live)/(1<<20), perTask)
	if !settled {
		r.note(M, "the heap was still shrinking when the ledger measure began (the measures before it still ending): the heap figures are approximate")
	}
	r.note(M, "snapshot %.1f MiB (%.0f bytes per task), written in %s, read back in %s", float64(snapSize)/(1<<20), float64(snapSize)/float64(n), snapWrite.Round(time.Millisecond), snapRead.Round(time.Millisecond))
	r.note(M, "walking every job, as the leader's retention loop does after every apply: %s", scan.summary())
	r.note(M, "%d-task job (in the %dk-task ledger): task views built in %s; with the JSON the API writes (indented, %.0f KiB) %s; with compact JSON %s", jobN, n/1000, build0.summary(), float64(size)/1024, withJSON.summary(), compact.summary())
	return nil
}

// jobDetail is node's jobDetail without the node: the job and its task
// views, read from the state.
func jobDetail(s *raftfsm.State, id string) api.JobDetail {
	j := s.Jobs[id]
	d := api.JobDetail{SchemaVersion: api.SchemaVersion, Index: j.Modified, Job: api.NewJobView(j)}
	d.Tasks = make([]api.TaskView, 0, len(j.Tasks))
	for _, t := range s.JobTasks(id) {
		d.Tasks = append(d.Tasks, api.NewTaskView(t))
	}
	return d
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

// ledgerBuilder applies whole jobs: every task spawned (assigned at once,
// as the dispatcher does), started and finished (passed).
type ledgerBuilder struct {
	s       *raftfsm.State
	idx     uint64
	at      time.Time
	tasks   int
	jobs    int
	lastJob string
}

func (b *ledgerBuilder) apply(c raftfsm.Command) error {
	b.idx++
	b.at = b.at.Add(time.Millisecond)
	res := b.s.Apply(b.idx, c)
	if res.Err != nil {
		return res.Err
	}
	for _, p := range res.Batch {
		if p.Err != nil {
			return p.Err
		}
	}
	return nil
}

func hexID(prefix byte, n int) string {
	return fmt.Sprintf("%c%011x", prefix, n)
}

func (b *ledgerBuilder) job(size int) error {
	b.jobs++
	job := hexID('a', b.jobs)
	b.lastJob = job
	nodes := []string{"node0", "node1", "node2"}
	root := ""
	ids := make([]string, size)
	for k := 0; k < size; k++ {
		b.tasks++
		id := hexID('b', b.tasks)
		ids[k] = id
		sp := &raftfsm.Spawn{
			Job: job, Task: id, Topic: "ourci/build/docker", Args: []string{"OTA=1 ci/fw/esp8266.sh"},
			Assign: nodes[b.tasks%3], At: b.at,
		}
		if k == 0 {
			root = id
			sp.NewJob = &raftfsm.NewJob{Source: raftfsm.Source{Repo: "https://github.com/ourci/example", SHA: "0123456789abcdef0123456789abcdef01234567", Branch: "main"},
				Trigger: "push", Deadline: b.at.Add(time.Hour)}
			sp.Key = "cluster:" + hexID('c', b.tasks) + "0000"
		} else {
			sp.Parent = root
			sp.Key = "task:" + root + ":" + hexID('c', b.tasks) + "0000"
		}
		if err := b.apply(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp}); err != nil {
			return err
		}
	}
	for _, id := range ids {
		node := b.s.Tasks[id].Node
		if err := b.apply(raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: id, Attempt: 1, Node: node, At: b.at}}); err != nil {
			return err
		}
	}
	// Children finish before the root, as in a pipeline.
	for k := size - 1; k >= 0; k-- {
		id := ids[k]
		code := 0
		node := b.s.Tasks[id].Node
		if err := b.apply(raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{
			Task: id, Attempt: 1, Node: node, State: raftfsm.TaskPassed, ExitCode: &code, At: b.at}}); err != nil {
			return err
		}
	}
	return nil
}

// settledHeap collects garbage until the heap in use stays put and returns
// that reading. The measures before this one leave goroutines that end
// (and let go of what they held) for a moment after their mesh closed: a
// reading taken meanwhile counts memory that is freed during the ledger
// build, and the ledger's heap would come out too small, even negative on
// a loaded machine. settled is false when the heap still moved after 5 s.
func settledHeap(ctx context.Context) (_ runtime.MemStats, settled bool) {
	const still = 128 << 10 // bytes: what counts as not moving
	var prev, cur runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&prev)
	deadline := time.Now().Add(5 * time.Second)
	for calm := 0; calm < 3; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return prev, false
		}
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&cur)
		if d := int64(cur.HeapInuse) - int64(prev.HeapInuse); d > -still && d < still {
			calm++
		} else {
			calm = 0
		}
		prev = cur
	}
	return prev, true
}
