package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/raftfsm"
)

// SchemaVersion is the version of the JSON report.
const SchemaVersion = 1

// Measure names, for Options.Only.
const (
	MSpawn      = "spawn"      // spawn-to-start latency, idle, with its floor
	MThroughput = "throughput" // sustained tasks/s under many spawners
	MFailover   = "failover"   // leader kill → first task assigned by the new leader
	MWorker     = "worker"     // worker kill → its task reassigned
	MGossip     = "gossip"     // a subscription change reaching every node
	MBlobs      = "blobs"      // 1 GiB node to node; 64 KiB blobs/s
	MLedger     = "ledger"     // memory and snapshot size at 100k tasks; 1,000-task job status
	MLogs       = "logs"       // task output through the mesh to a sealed log, beside a local file
)

// AllMeasures lists every measure in the order they run.
var AllMeasures = []string{MSpawn, MThroughput, MWorker, MFailover, MBlobs, MLogs, MGossip, MLedger}

// Options sizes a run. Zero values take the defaults of Defaults (or Quick).
type Options struct {
	Dir  string // working directory; "" makes a temporary one, removed afterwards
	Keep bool   // keep Dir (node data, nodes.log) afterwards

	Only []string // measures to run; empty runs all
	WAN  bool     // WAN Raft and gossip timings instead of the LAN defaults

	Spawns        int     // sequential spawns for spawn-to-start
	Tasks         int     // tasks for the throughput run
	Spawners      int     // concurrent spawners in the throughput run
	Slots         int     // task slots per node
	Kills         int     // leader kills
	WorkerKills   int     // worker kills
	GossipSizes   []int   // gossip cluster sizes
	GossipChanges int     // subscription changes per gossip size
	BlobMiB       int     // the large blob, MiB
	SmallBlobs    int     // 64 KiB blobs put and fetched
	BlobWorkers   int     // concurrent 64 KiB blob workers
	LogMiB        int     // output of each task in the logs measure, MiB
	LedgerTasks   int     // finished tasks in the ledger-scale state
	JobTasks      int     // tasks in the job whose status is built
	Timeout       float64 // seconds; a guard on the whole run (0: 30 minutes)

	// RaftTiming, when set, replaces the Raft timings of the mesh and of
	// the floor's Raft group (experiments: what would other timings give?).
	RaftTiming *raftfsm.Timing
	// CPUProfile, when set, writes a CPU profile of the whole run (the
	// nodes run in this process, so it covers them) to this file.
	CPUProfile string

	Progress io.Writer // progress lines; nil discards
	NodeLog  io.Writer // the nodes' own logs; nil writes DIR/nodes.log
}

// Defaults is the full run: a few minutes on a 2-core machine.
func Defaults() Options {
	return Options{
		Spawns: 300, Tasks: 3000, Spawners: 64, Slots: 32, Kills: 10, WorkerKills: 3,
		GossipSizes: []int{3, 10, 30}, GossipChanges: 20, BlobMiB: 1024, SmallBlobs: 3000, BlobWorkers: 16, LogMiB: 64,
		LedgerTasks: 100_000, JobTasks: 1000,
	}
}

// Quick is a shorter run (about a minute) with the same measures.
func Quick() Options {
	return Options{
		Spawns: 100, Tasks: 1000, Spawners: 64, Slots: 32, Kills: 3, WorkerKills: 1,
		GossipSizes: []int{3, 10, 30}, GossipChanges: 8, BlobMiB: 128, SmallBlobs: 1000, BlobWorkers: 16, LogMiB: 16,
		LedgerTasks: 100_000, JobTasks: 1000,
	}
}

func (o Options) withDefaults() Options {
	d := Defaults()
	set := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&o.Spawns, d.Spawns)
	set(&o.Tasks, d.Tasks)
	set(&o.Spawners, d.Spawners)
	set(&o.Slots, d.Slots)
	set(&o.Kills, d.Kills)
	set(&o.WorkerKills, d.WorkerKills)
	set(&o.GossipChanges, d.GossipChanges)
	set(&o.BlobMiB, d.BlobMiB)
	set(&o.SmallBlobs, d.SmallBlobs)
	set(&o.BlobWorkers, d.BlobWorkers)
	set(&o.LogMiB, d.LogMiB)
	set(&o.LedgerTasks, d.LedgerTasks)
	set(&o.JobTasks, d.JobTasks)
	if len(o.GossipSizes) == 0 {
		o.GossipSizes = d.GossipSizes
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

func (o Options) runs(m string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, m) }

func (o Options) raftTiming() raftfsm.Timing {
	if o.RaftTiming != nil {
		return *o.RaftTiming
	}
	if o.WAN {
		return raftfsm.WAN
	}
	return raftfsm.LAN
}

func (o Options) gossipProfile() gossip.Profile {
	if o.WAN {
		return gossip.WAN
	}
	return gossip.LAN
}

// Report is the outcome of a run.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	Started       time.Time `json:"started"`
	Seconds       float64   `json:"seconds"`
	Machine       Machine   `json:"machine"`
	Timings       string    `json:"timings"` // "lan" or "wan"
	Rows          []Row     `json:"rows"`
	// Notes are the numbers behind the rows: breakdowns, sizes, counts.
	Notes []Note `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	MemMiB   int64  `json:"mem_mib,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	Go       string `json:"go"`
	// Load averages (1 min) when the run started and ended: other work on
	// the machine shows here, and every measure shares the same cores.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// Row is one line of the table. OurCI and Floor are in Unit; Ratio is
// OurCI/Floor. Result is "pass", "fail" or "info" (no target).
type Row struct {
	Key     string   `json:"key"` // stable machine name, e.g. "spawn_start_p50_ms"
	Measure string   `json:"measure"`
	Unit    string   `json:"unit"`
	OurCI   float64  `json:"ourci"`
	Floor   *float64 `json:"floor,omitempty"`
	Ratio   *float64 `json:"ratio,omitempty"`
	Target  string   `json:"target"`
	Result  string   `json:"result"`
	// FloorIs says what the floor is.
	FloorIs string `json:"floor_is,omitempty"`
}

// Note is one supporting figure.
type Note struct {
	Measure string `json:"measure"`
	Text    string `json:"text"`
}

// Failed lists the rows that missed their target.
func (r *Report) Failed() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Result == "fail" {
			out = append(out, row)
		}
	}
	return out
}

// run holds one run's shared state.
type run struct {
	o      Options
	dir    string
	rep    *Report
	nodeLg *slog.Logger
	probe  *probe
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "bench: "+format+"\n", args...)
}

func (r *run) note(measure, format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, Note{Measure: measure, Text: fmt.Sprintf(format, args...)})
}

func (r *run) row(row Row) { r.rep.Rows = append(r.rep.Rows, row) }

// Run runs the measures o selects and returns the report. A measure that
// cannot complete is an error: a benchmark never reports a number it did
// not measure.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	if _, err := wait.Factor(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	for _, m := range o.Only {
		if !slices.Contains(AllMeasures, m) {
			return nil, fmt.Errorf("bench: unknown measure %q (have %s)", m, strings.Join(AllMeasures, ", "))
		}
	}
	timeout := 30 * time.Minute
	if o.Timeout > 0 {
		timeout = time.Duration(o.Timeout * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ourci-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
		if !o.Keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rep := &Report{SchemaVersion: SchemaVersion, Started: time.Now().UTC(), Machine: machine(), Timings: "lan"}
	if o.WAN {
		rep.Timings = "wan"
	}
	if t := o.RaftTiming; t != nil {
		rep.Timings += fmt.Sprintf(" gossip, Raft heartbeat %s election %s lease %s commit %s", t.Heartbeat, t.Election, t.LeaderLease, t.Commit)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	r := &run{o: o, dir: dir, rep: rep}
	logw := o.NodeLog
	if logw == nil {
		f, err := os.Create(filepath.Join(dir, "nodes.log"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		logw = f
	}
	r.nodeLg = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := newProbe(filepath.Join(dir, "probe.fifo"))
	if err != nil {
		return nil, err
	}
	defer p.close()
	r.probe = p
	r.progress("working in %s", dir)

	start := time.Now()
	needMesh := o.runs(MSpawn) || o.runs(MThroughput) || o.runs(MWorker) || o.runs(MFailover) || o.runs(MBlobs) || o.runs(MLogs)
	if needMesh {
		if err := r.meshMeasures(ctx); err != nil {
			return rep, err
		}
	}
	if o.runs(MGossip) {
		if err := r.gossipMeasure(ctx); err != nil {
			return rep, fmt.Errorf("bench: gossip: %w", err)
		}
	}
	if o.runs(MLedger) {
		if err := r.ledgerMeasure(ctx); err != nil {
			return rep, fmt.Errorf("bench: ledger: %w", err)
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Machine.LoadEnd = loadAvg()
	return rep, nil
}

func (r *run) meshMeasures(ctx context.Context) error {
	r.progress("starting a 3-node mesh on 127.0.0.1 (%s timings, %d slots per node)", r.rep.Timings, r.o.Slots)
	t0 := time.Now()
	m, err := startMesh(ctx, r, 3)
	if err != nil {
		return fmt.Errorf("bench: mesh: %w", err)
	}
	defer m.close()
	r.note("mesh", "3 nodes up, Raft voters and gossip settled in %s", time.Since(t0).Round(time.Millisecond))
	steps := []struct {
		name string
		fn   func(context.Context, *mesh) error
	}{
		{MSpawn, r.spawnMeasure},
		{MThroughput, r.throughputMeasure},
		{MWorker, r.workerMeasure},
		{MFailover, r.failoverMeasure},
		{MBlobs, r.blobMeasure},
		{MLogs, r.logsMeasure},
	}
	for _, s := range steps {
		if !r.o.runs(s.name) {
			continue
		}
		if err := m.settle(ctx, 30*time.Second); err != nil {
			return fmt.Errorf("bench: before %s: %w", s.name, err)
		}
		if err := s.fn(ctx, m); err != nil {
			return fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	return nil
}

func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemMiB = kb / 1024
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	return m
}

func loadAvg() float64 {
	var v float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f", &v)
	}
	return v
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a fixed-width table followed by the notes.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "OurCI bench  %s  (%.0f s)\n", r.Started.Format(time.RFC3339), r.Seconds)
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs (%s), %d MiB, %s, %s\n", m.OS, m.Arch, m.CPUs, m.CPUModel, m.MemMiB, m.Kernel, m.Go)
	fmt.Fprintf(w, "load average %.2f at the start, %.2f at the end; timings: %s\n\n", m.LoadStart, m.LoadEnd, r.Timings)
	head := []string{"measure", "OurCI", "floor", "ratio", "target", "result"}
	rows := [][]string{head}
	for _, row := range r.Rows {
		floor, ratio := "-", "-"
		if row.Floor != nil {
			floor = formatValue(*row.Floor, row.Unit)
		}
		if row.Ratio != nil {
			if *row.Ratio >= 10 {
				ratio = fmt.Sprintf("%.0fx", *row.Ratio)
			} else {
				ratio = fmt.Sprintf("%.2fx", *row.Ratio)
			}
		}
		rows = append(rows, []string{row.Measure, formatValue(row.OurCI, row.Unit), floor, ratio, row.Target, row.Result})
	}
	widths := make([]int, len(head))
	for _, cells := range rows {
		for i, c := range cells {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for k, cells := range rows {
		var sb strings.Builder
		for i, c := range cells {
			pad := widths[i] - len([]rune(c))
			if i >= 1 && i <= 3 { // numbers: right-aligned
				sb.WriteString(strings.Repeat(" ", pad) + c)
			} else {
				sb.WriteString(c + strings.Repeat(" ", pad))
			}
			if i < len(cells)-1 {
				sb.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
		if k == 0 {
			total := len(widths)*2 - 2
			for _, x := range widths {
				total += x
			}
			fmt.Fprintln(w, strings.Repeat("-", total))
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  [%s] %s\n", n.Measure, n.Text)
		}
	}
	if countTargets(r.Rows) == 0 {
		fmt.Fprintln(w, "\nno targets in these measures")
	} else if f := r.Failed(); len(f) > 0 {
		fmt.Fprintf(w, "\n%d of %d targets missed\n", len(f), countTargets(r.Rows))
	} else {
		fmt.Fprintf(w, "\nall %d targets met\n", countTargets(r.Rows))
	}
	return nil
}

func countTargets(rows []Row) int {
	n := 0
	for _, r := range rows {
		if r.Result != "info" {
			n++
		}
	}
	return n
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "ms":
		switch {
		case v >= 100 || v <= -100:
			return fmt.Sprintf("%.0f ms", v)
		case v >= 10 || v <= -10:
			return fmt.Sprintf("%.1f ms", v)
		}
		return fmt.Sprintf("%.2f ms", v)
	case "us":
		return fmt.Sprintf("%.0f µs", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(v float64) *float64 { return &v }

func passIf(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

var errTimeout = errors.New("bench: timed out")

// scaled is d times OURCI_TEST_TIMEOUT_SCALE (package wait): the harness's
// waits stretch on a slow or loaded machine as the tests' do. Run checks
// the variable first, so this does not panic.
func scaled(d time.Duration) time.Duration { return wait.Scale(d) }
