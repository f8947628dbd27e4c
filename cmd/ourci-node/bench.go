package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ourci/ourci/node/bench"
	"github.com/ourci/ourci/raftfsm"
)

// runBench measures OurCI and the physical floor beneath each measure in one
// run, in this process on 127.0.0.1, and prints the table (see
// BENCHMARKS.md and package node/bench).
func runBench(args []string) int {
	fs := newFlagSet("bench", "[--quick] [--json] [--only LIST] [flags]")
	quick := fs.Bool("quick", false, "a shorter run (about a minute): fewer samples, a 128 MiB blob")
	asJSON := fs.Bool("json", false, "print the report as JSON (schema_version 1) instead of the table")
	only := fs.String("only", "", "comma-separated measures to run: "+strings.Join(bench.AllMeasures, ","))
	wan := fs.Bool("wan", false, "WAN Raft and gossip timings instead of the LAN defaults")
	dir := fs.String("dir", "", "working directory (default: a new temporary one)")
	keep := fs.Bool("keep", false, "keep the working directory (node data, nodes.log) afterwards")
	verbose := fs.Bool("verbose", false, "write the nodes' own logs to stderr")
	strict := fs.Bool("strict", false, "exit 1 when a target is missed")
	raftTiming := fs.String("raft-timing", "", "experiment: Raft HEARTBEAT,ELECTION,LEASE,COMMIT timings for the mesh and the floor (e.g. 150ms,150ms,100ms,2ms)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (nodes included: they run in this process) to FILE")
	d := bench.Defaults()
	spawns := fs.Int("spawns", 0, fmt.Sprintf("sequential spawns for spawn-to-start (default %d, quick %d)", d.Spawns, bench.Quick().Spawns))
	tasks := fs.Int("tasks", 0, fmt.Sprintf("tasks in the throughput run (default %d, quick %d)", d.Tasks, bench.Quick().Tasks))
	spawners := fs.Int("spawners", 0, fmt.Sprintf("concurrent spawners in the throughput run (default %d)", d.Spawners))
	slots := fs.Int("slots", 0, fmt.Sprintf("task slots per node (default %d)", d.Slots))
	kills := fs.Int("kills", 0, fmt.Sprintf("leader kills (default %d, quick %d)", d.Kills, bench.Quick().Kills))
	workerKills := fs.Int("worker-kills", 0, fmt.Sprintf("worker kills (default %d, quick %d)", d.WorkerKills, bench.Quick().WorkerKills))
	gossipSizes := fs.String("gossip-sizes", "", "gossip cluster sizes (default 3,10,30)")
	gossipChanges := fs.Int("gossip-changes", 0, fmt.Sprintf("subscription changes per gossip size (default %d, quick %d)", d.GossipChanges, bench.Quick().GossipChanges))
	blobMiB := fs.Int("blob-mib", 0, fmt.Sprintf("size of the large blob in MiB (default %d, quick %d)", d.BlobMiB, bench.Quick().BlobMiB))
	logMiB := fs.Int("log-mib", 0, fmt.Sprintf("output of each task in the logs measure, MiB (default %d, quick %d)", d.LogMiB, bench.Quick().LogMiB))
	smallBlobs := fs.Int("small-blobs", 0, fmt.Sprintf("64 KiB blobs put and fetched (default %d, quick %d)", d.SmallBlobs, bench.Quick().SmallBlobs))
	blobWorkers := fs.Int("blob-workers", 0, fmt.Sprintf("concurrent workers putting and fetching 64 KiB blobs (default %d)", d.BlobWorkers))
	ledgerTasks := fs.Int("ledger-tasks", 0, fmt.Sprintf("finished tasks in the ledger-scale measure (default %d)", d.LedgerTasks))
	jobTasks := fs.Int("job-tasks", 0, fmt.Sprintf("tasks in the job whose status is built (default %d)", d.JobTasks))
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	o := d
	if *quick {
		o = bench.Quick()
	}
	o.Dir, o.Keep, o.WAN = *dir, *keep, *wan
	for _, p := range []struct {
		dst *int
		v   int
	}{{&o.Spawns, *spawns}, {&o.Tasks, *tasks}, {&o.Spawners, *spawners}, {&o.Slots, *slots}, {&o.Kills, *kills},
		{&o.WorkerKills, *workerKills}, {&o.GossipChanges, *gossipChanges}, {&o.BlobMiB, *blobMiB}, {&o.LogMiB, *logMiB},
		{&o.SmallBlobs, *smallBlobs}, {&o.BlobWorkers, *blobWorkers}, {&o.LedgerTasks, *ledgerTasks}, {&o.JobTasks, *jobTasks}} {
		if p.v < 0 {
			fmt.Fprintln(os.Stderr, "ourci-node bench: sizes must be positive")
			return exitUsage
		}
		if p.v > 0 {
			*p.dst = p.v
		}
	}
	if *gossipSizes != "" {
		o.GossipSizes = nil
		for _, s := range strings.Split(*gossipSizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 2 {
				fmt.Fprintf(os.Stderr, "ourci-node bench: --gossip-sizes %q: want sizes of 2 or more, comma-separated\n", *gossipSizes)
				return exitUsage
			}
			o.GossipSizes = append(o.GossipSizes, n)
		}
	}
	if *raftTiming != "" {
		var ds []time.Duration
		for _, p := range strings.Split(*raftTiming, ",") {
			v, err := time.ParseDuration(strings.TrimSpace(p))
			if err != nil || v <= 0 {
				ds = nil
				break
			}
			ds = append(ds, v)
		}
		if len(ds) != 4 {
			fmt.Fprintf(os.Stderr, "ourci-node bench: --raft-timing %q: want HEARTBEAT,ELECTION,LEASE,COMMIT durations\n", *raftTiming)
			return exitUsage
		}
		o.RaftTiming = &raftfsm.Timing{Heartbeat: ds[0], Election: ds[1], LeaderLease: ds[2], Commit: ds[3]}
	}
	o.CPUProfile = *cpuProfile
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	o.Progress = os.Stderr
	if *verbose {
		o.NodeLog = os.Stderr
	}
	ctx, cancel := signalContext()
	defer cancel()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		if rep != nil && len(rep.Rows) > 0 {
			fmt.Fprintln(os.Stderr, "ourci-node bench: stopped early; what was measured:")
			rep.WriteTable(os.Stderr)
		}
		return exitFor(err)
	}
	var out io.Writer = os.Stdout
	if *asJSON {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteTable(out)
	}
	if err != nil {
		return exitFor(err)
	}
	if *strict && len(rep.Failed()) > 0 {
		return exitFailed
	}
	return exitOK
}
