package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// warmup spawns run before any sample is kept: they open the client's and
// the nodes' connections and fault in the code paths.
const warmup = 5

// spawnMeasure: sequential spawns on an idle mesh. Spawn i goes to node
// i%3's API and names the topic only node (i+i/3)%3 serves, so every
// (client node, running node) pair, leader and followers, is sampled
// equally. Each spawn waits for its task to finish before the next.
//
// Interleaved with them, in the same loop, the floor: two entries applied
// one after the other on a bare 3-node Raft group, then a process start
// (the same probe command, run by os/exec).
func (r *run) spawnMeasure(ctx context.Context, m *mesh) error {
	n := r.o.Spawns
	r.progress("spawn→start: %d sequential spawns on an idle mesh, floor interleaved", n)
	rg, err := startRaftGroup(ctx, r, 3)
	if err != nil {
		return fmt.Errorf("floor raft group: %w", err)
	}
	defer rg.close()
	watchers := make([]*watcher, len(m.nodes))
	for i, nd := range m.nodes {
		watchers[i] = newWatcher(nd.FSM())
		defer watchers[i].close()
	}
	leader, err := m.waitLeader(ctx)
	if err != nil {
		return err
	}

	var (
		retFirst, callFirst, callRet dist
		onLeader, onFollower         dist
		viaLeader, viaFollower       dist
		retApplied, appliedFirst     dist // followers as targets only / all
		floorRaft, floorProc, floor  dist
	)
	for i := -warmup; i < n; i++ {
		ci, ti := ((i%3)+3)%3, (((i+i/3)%3)+3)%3
		target := m.name(ti)
		key := randKey()
		wid, appliedC := watchers[ti].add(func(s *raftfsm.State) bool {
			id, ok := s.Keys["cluster:"+key]
			return ok && s.Tasks[id].Node == target
		})
		tCall := time.Now()
		res, err := m.cliClient(ci).Spawn(ctx, api.SpawnRequest{Topic: "bench-" + target, Args: []string{r.probe.taskCommand()}, Key: key})
		tRet := time.Now()
		if err != nil {
			watchers[ti].remove(wid)
			return fmt.Errorf("spawn %d via %s: %w", i, m.name(ci), err)
		}
		first, err := r.probe.wait(ctx, res.Task+".1", 10*time.Second)
		if err != nil {
			return err
		}
		var applied time.Time
		select {
		case applied = <-appliedC:
		case <-time.After(scaled(10 * time.Second)):
			return fmt.Errorf("%w: %s did not apply its task within %s", errTimeout, target, scaled(10*time.Second))
		}
		if _, err := watchers[leader].until(ctx, 10*time.Second, "task "+res.Task+" to finish", taskTerminal(res.Task)); err != nil {
			return err
		}
		fr, err := rg.commit(ctx, spawnEntry(), spawnEntry())
		if err != nil {
			return fmt.Errorf("floor raft: %w", err)
		}
		fp, err := r.probe.procStart(ctx, "floor-"+strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("floor process: %w", err)
		}
		if i < 0 {
			continue
		}
		d := first.Sub(tRet)
		retFirst = append(retFirst, d)
		callFirst = append(callFirst, first.Sub(tCall))
		callRet = append(callRet, tRet.Sub(tCall))
		appliedFirst = append(appliedFirst, first.Sub(applied))
		if ti == leader {
			onLeader = append(onLeader, d)
		} else {
			onFollower = append(onFollower, d)
			if ci != ti {
				// The client's own node answers only after its replica
				// applied; a third node learns the commit on its own time.
				retApplied = append(retApplied, applied.Sub(tRet))
			}
		}
		if ci == leader {
			viaLeader = append(viaLeader, d)
		} else {
			viaFollower = append(viaFollower, d)
		}
		floorRaft = append(floorRaft, fr)
		floorProc = append(floorProc, fp)
		floor = append(floor, fr+fp)
	}
	var lag dist
	for i := 0; i < 50; i++ {
		d, err := rg.followerLag(ctx)
		if err != nil {
			return fmt.Errorf("floor raft follower lag: %w", err)
		}
		lag = append(lag, d)
	}

	p50, p99 := retFirst.pct(0.5), retFirst.pct(0.99)
	f50, f99 := floor.pct(0.5), floor.pct(0.99)
	r.row(Row{Key: "spawn_start_p50_ms", Measure: "spawn→start p50, idle", Unit: "ms", OurCI: ms(p50), Floor: ptr(ms(f50)), Ratio: ptr(ms(p50) / ms(f50)),
		Target: "≤ 8 ms, ≤ 2x floor", Result: passIf(p50 <= 8*time.Millisecond && p50 <= 2*f50),
		FloorIs: "2 sequential applies on a bare 3-node Raft group + sh start, p50"})
	r.row(Row{Key: "spawn_start_p99_ms", Measure: "spawn→start p99, idle", Unit: "ms", OurCI: ms(p99), Floor: ptr(ms(f99)), Ratio: ptr(ms(p99) / ms(f99)),
		Target: "≤ 40 ms, ≤ 2x floor", Result: passIf(p99 <= 40*time.Millisecond && p99 <= 2*f99),
		FloorIs: "2 sequential applies on a bare 3-node Raft group + sh start, p99"})
	c50 := callFirst.pct(0.5)
	r.row(Row{Key: "spawn_call_start_p50_ms", Measure: "spawn call→start p50 (whole call)", Unit: "ms", OurCI: ms(c50), Floor: ptr(ms(f50)), Ratio: ptr(ms(c50) / ms(f50)),
		Target: "-", Result: "info", FloorIs: "as above"})
	const M = MSpawn
	r.note(M, "%d samples after %d warm-up spawns; spawn i via node i%%3's API, its task pinned to node (i+i/3)%%3 (leader %s)", n, warmup, m.name(leader))
	r.note(M, "spawn returned → first instruction: %s", retFirst.summary())
	r.note(M, "  task on the leader: %s", onLeader.summary())
	r.note(M, "  task on a follower: %s", onFollower.summary())
	r.note(M, "  spawn sent to the leader's API: %s", viaLeader.summary())
	r.note(M, "  spawn sent to a follower's API (relayed; answers after its own replica applied): %s", viaFollower.summary())
	r.note(M, "spawn call (HTTP round trip, one Raft commit, read-your-writes wait): %s", callRet.summary())
	r.note(M, "spawn called → first instruction: %s", callFirst.summary())
	r.note(M, "running node applied the entry → first instruction (runner wake-up, log file, workspace, env, fork/exec of sh): %s", appliedFirst.summary())
	r.note(M, "spawn returned → a third node (neither client's nor leader) applied the entry: %s", retApplied.summary())
	r.note(M, "floor: 2 Raft applies %s", floorRaft.summary())
	if k := rg.changes.Load(); k > 0 {
		r.note(M, "floor: %d proposals met a leadership change of the bare Raft group (a late heartbeat on a loaded machine) and were made again under the next leader; those samples were not kept", k)
	}
	r.note(M, "floor: sh start to its first instruction %s", floorProc.summary())
	r.note(M, "floor: bare Raft follower applies an entry after the leader did (commit index travels with the next AppendEntries; CommitTimeout %s): %s", r.o.raftTiming().Commit, lag.summary())
	return nil
}

// throughputMeasure: many spawners at once, each in a closed loop (spawn,
// wait for the task to finish, spawn again), on the topic every node
// serves. Throughput counts tasks that reached "passed" in the ledger.
// The floor: the same number of concurrent loops starting the same probe
// command with os/exec, no OurCI at all.
func (r *run) throughputMeasure(ctx context.Context, m *mesh) error {
	total, spawners := r.o.Tasks, r.o.Spawners
	r.progress("throughput: %d tasks from %d concurrent spawners (%d slots per node)", total, spawners, r.o.Slots)
	leader, err := m.waitLeader(ctx)
	if err != nil {
		return err
	}
	w := newWatcher(m.nodes[leader].FSM())
	defer w.close()
	var (
		mu       sync.Mutex
		lat      dist
		next     atomic.Int64
		passed   atomic.Int64
		errs     atomic.Int64
		firstErr error
		wg       sync.WaitGroup
	)
	idle := startFsyncProbe(r.dir, 20*time.Millisecond)
	time.Sleep(time.Second)
	idleSync := idle.finish()
	busy := startFsyncProbe(r.dir, 20*time.Millisecond)
	cad := startApplyCadence(m.nodes[leader].FSM())
	lw := m.watchLeader()
	idx0 := m.nodes[leader].FSM().Index()
	tw0 := m.timeWait()
	start := time.Now()
	for j := 0; j < spawners; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := m.cliClient(j % len(m.nodes))
			for next.Add(1) <= int64(total) && ctx.Err() == nil {
				res, err := cl.Spawn(ctx, api.SpawnRequest{Topic: "bench", Args: []string{r.probe.taskCommand()}, Key: randKey()})
				tRet := time.Now()
				if err == nil {
					var first time.Time
					first, err = r.probe.wait(ctx, res.Task+".1", 30*time.Second)
					if err == nil {
						_, err = w.until(ctx, 30*time.Second, "task to finish", taskTerminal(res.Task))
					}
					if err == nil {
						mu.Lock()
						lat = append(lat, first.Sub(tRet))
						mu.Unlock()
						passed.Add(1)
					}
				}
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	entries := m.nodes[leader].FSM().Index() - idx0
	cad.finish()
	busySync := busy.finish()
	lw.finish()
	tw := m.timeWait() - tw0
	if firstErr != nil && errs.Load() > int64(total)/100 {
		return fmt.Errorf("%d of %d tasks failed, first: %w", errs.Load(), total, firstErr)
	}
	rate := float64(passed.Load()) / elapsed.Seconds()

	// Floor: the same concurrency, plain process starts.
	fn := min(total, 3000)
	var (
		fmu  sync.Mutex
		flat dist
		fnx  atomic.Int64
		fwg  sync.WaitGroup
		ferr error
	)
	fstart := time.Now()
	for j := 0; j < spawners; j++ {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for {
				k := fnx.Add(1)
				if k > int64(fn) || ctx.Err() != nil {
					return
				}
				d, err := r.probe.procStart(ctx, "tput-floor-"+strconv.FormatInt(k, 10))
				fmu.Lock()
				if err != nil && ferr == nil {
					ferr = err
				}
				flat = append(flat, d)
				fmu.Unlock()
			}
		}()
	}
	fwg.Wait()
	if ferr != nil {
		return fmt.Errorf("floor: %w", ferr)
	}
	frate := float64(fn) / time.Since(fstart).Seconds()

	p99 := lat.pct(0.99)
	r.row(Row{Key: "throughput_tasks_per_s", Measure: fmt.Sprintf("throughput, %d spawners", spawners), Unit: "tasks/s", OurCI: rate, Floor: ptr(frate), Ratio: ptr(rate / frate),
		Target: "≥ 500 tasks/s", Result: passIf(rate >= 500), FloorIs: "sh starts/s at the same concurrency"})
	r.row(Row{Key: "loaded_spawn_start_p99_ms", Measure: "spawn→start p99 under that load", Unit: "ms", OurCI: ms(p99), Floor: ptr(ms(flat.pct(0.99))), Ratio: ptr(ms(p99) / ms(flat.pct(0.99))),
		Target: "≤ 100 ms", Result: passIf(p99 <= 100*time.Millisecond), FloorIs: "sh start p99 at the same concurrency"})
	const M = MThroughput
	r.note(M, "%d tasks passed in %s (%d errors); spawners closed-loop: spawn (retrying as the CLI does), wait for the start, wait for the ledger to show it finished", passed.Load(), elapsed.Round(time.Millisecond), errs.Load())
	r.note(M, "TCP connections to or from the nodes' API and peer ports closed during the run (TIME_WAIT): %d, for %d tasks; the bench's own clients keep theirs open, so these are node-to-node calls (relayed spawns, reports on the mutual-TLS peer port) not reusing connections", tw, passed.Load())
	r.note(M, "leadership lost during the run: %d times (%s without a leader)", lw.changes, lw.none)
	r.note(M, "%d Raft entries for %d tasks (spawn+assign, started, finished: 3 commands each): %.1f commands per entry on average", entries, passed.Load(), 3*float64(passed.Load())/float64(max(entries, 1)))
	r.note(M, "spawn returned → first instruction under load: %s", lat.summary())
	r.note(M, "leader's replica, time between successive applies during the run (one dispatcher round = one Raft commit): %s", cad.gaps.summary())
	r.note(M, "fsync of a 64-byte append on the same disk: idle %s; during the run %s", idleSync.summary(), busySync.summary())
	r.note(M, "floor: %d sh starts by %d concurrent loops: %.0f/s; start → first instruction %s", fn, spawners, frate, flat.summary())
	return nil
}
