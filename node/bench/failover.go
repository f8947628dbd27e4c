package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// failoverMeasure kills the leader (node.Kill: as kill -9 would) and times
// how long until a task spawned through a surviving node is committed,
// assigned by the new leader, and until it starts. The spawner retries
// every 5 ms from the instant of the kill. The killed node is started again
// at the same addresses and the mesh settles before the next kill.
func (r *run) failoverMeasure(ctx context.Context, m *mesh) error {
	kills := r.o.Kills
	r.progress("leader failover: %d leader kills", kills)
	var assigned, started, killDur, attempts dist
	var leaders []string
	for k := 0; k < kills; k++ {
		if err := m.settle(ctx, 60*time.Second); err != nil {
			return err
		}
		l, err := m.waitLeader(ctx)
		if err != nil {
			return err
		}
		ci, ti := (l+1)%3, (l+2)%3
		target := m.name(ti)
		sv := m.nodes[ci]
		key := randKey()
		t0 := time.Now()
		kd := m.kill(l)
		var res api.SpawnResponse
		tries := 0
		for {
			tries++
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			var err error
			res, err = m.client(ci).Spawn(actx, api.SpawnRequest{Topic: "bench-" + target, Args: []string{r.probe.taskCommand()}, Key: key})
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if limit := scaled(30 * time.Second); time.Since(t0) > limit {
				return fmt.Errorf("%w: no spawn accepted %s after the leader died: %w", errTimeout, limit, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		tAssigned := time.Now()
		// The spawn returned: committed and applied on the survivor it was
		// sent to. Check the new leader assigned it in the same entry.
		var node string
		sv.FSM().Read(func(s *raftfsm.State, _ uint64) {
			if t := s.Tasks[res.Task]; t != nil {
				node = t.Node
			}
		})
		if node != target {
			return fmt.Errorf("task %s spawned after the kill was assigned to %q, not %s", res.Task, node, target)
		}
		first, err := r.probe.wait(ctx, res.Task+".1", 10*time.Second)
		if err != nil {
			return err
		}
		newLeader := ""
		if nl := m.leader(); nl >= 0 {
			newLeader = m.name(nl)
		}
		leaders = append(leaders, fmt.Sprintf("%s→%s", m.name(l), newLeader))
		assigned = append(assigned, tAssigned.Sub(t0))
		started = append(started, first.Sub(t0))
		killDur = append(killDur, kd)
		attempts = append(attempts, time.Duration(tries))
		r.progress("  kill %d: %s died, %s leads; task assigned after %s, started after %s", k+1, m.name(l), newLeader, fmtDur(tAssigned.Sub(t0)), fmtDur(first.Sub(t0)))
		if err := m.start(l); err != nil {
			return err
		}
	}
	p50, mx := assigned.pct(0.5), assigned.max()
	r.row(Row{Key: "failover_p50_ms", Measure: fmt.Sprintf("leader kill→task assigned p50 (%d kills)", kills), Unit: "ms", OurCI: ms(p50),
		Target: "≤ 500 ms", Result: passIf(p50 <= 500*time.Millisecond)})
	r.row(Row{Key: "failover_max_ms", Measure: "leader kill→task assigned max", Unit: "ms", OurCI: ms(mx),
		Target: "≤ 1500 ms", Result: passIf(mx <= 1500*time.Millisecond)})
	t := r.o.raftTiming()
	const M = MFailover
	r.note(M, "kills: %v", leaders)
	r.note(M, "kill → spawn through a survivor committed and assigned by the new leader: %s", assigned.summary())
	r.note(M, "kill → that task's first instruction: %s", started.summary())
	r.note(M, "node.Kill itself took %s (counted in the above)", killDur.summary())
	tries := make([]int, len(attempts))
	for i, a := range attempts {
		tries[i] = int(a)
	}
	r.note(M, "spawn requests until one was accepted (5 ms apart): %v", tries)
	r.note(M, "no physical floor: Raft's own timers bound it (heartbeat timeout %s, randomised up to 2x, then an election of %s): a follower cannot tell a dead leader from a slow one sooner", t.Heartbeat, t.Election)
	return nil
}

// workerMeasure kills a follower that runs a task and times how long until
// the leader requeues and assigns the task to another node, and until its
// next attempt starts there.
//
// The task must land on the chosen worker and be movable elsewhere: the
// worker alone subscribes to "bench-dw" when it is spawned; the two other
// nodes subscribe to it (Node.SetOffer) once it runs, and the leader's
// gossip view shows them as subscribers before the kill.
func (r *run) workerMeasure(ctx context.Context, m *mesh) error {
	kills := r.o.WorkerKills
	r.progress("dead worker: %d worker kills", kills)
	var reassigned, restarted dist
	for k := 0; k < kills; k++ {
		if err := m.settle(ctx, 60*time.Second); err != nil {
			return err
		}
		l, err := m.waitLeader(ctx)
		if err != nil {
			return err
		}
		// The leader trusts gossip's absence only once its own gossip ran
		// for 5 s (lossGrace): wait that out, as a long-running leader would.
		if wait := 5500*time.Millisecond - time.Since(m.started[l]); wait > 0 {
			r.progress("  waiting %s: the leader started recently", wait.Round(time.Millisecond))
			time.Sleep(wait)
		}
		wi := (l + 1 + k%2) % 3
		worker := m.name(wi)
		if err := r.setDW(ctx, m, []int{wi}); err != nil {
			return err
		}
		key := randKey()
		res, err := m.cliClient(l).Spawn(ctx, api.SpawnRequest{Topic: "bench-dw", Args: []string{r.probe.taskCommand() + "; exec sleep 600"}, Key: key})
		if err != nil {
			return err
		}
		if _, err := r.probe.wait(ctx, res.Task+".1", 10*time.Second); err != nil {
			return err
		}
		var node string
		m.nodes[l].FSM().Read(func(s *raftfsm.State, _ uint64) { node = s.Tasks[res.Task].Node })
		if node != worker {
			return fmt.Errorf("the task landed on %s, not on %s", node, worker)
		}
		if err := r.setDW(ctx, m, []int{0, 1, 2}); err != nil {
			return err
		}
		w := newWatcher(m.nodes[l].FSM())
		_, moved := w.add(func(s *raftfsm.State) bool {
			t := s.Tasks[res.Task]
			return t != nil && t.Attempt >= 2 && t.Node != "" && t.Node != worker
		})
		t0 := time.Now()
		m.kill(wi)
		var tMoved time.Time
		select {
		case tMoved = <-moved:
		case <-time.After(scaled(2 * time.Minute)):
			w.close()
			return fmt.Errorf("%w: task %s not reassigned %s after its worker died", errTimeout, res.Task, scaled(2*time.Minute))
		}
		w.close()
		first, err := r.probe.wait(ctx, res.Task+".2", 10*time.Second)
		if err != nil {
			return err
		}
		reassigned = append(reassigned, tMoved.Sub(t0))
		restarted = append(restarted, first.Sub(t0))
		r.progress("  kill %d: worker %s died; task reassigned after %s, restarted after %s", k+1, worker, fmtDur(tMoved.Sub(t0)), fmtDur(first.Sub(t0)))
		if _, err := m.cliClient(l).Cancel(ctx, res.Job); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		if err := m.start(wi); err != nil {
			return err
		}
		if err := r.setDW(ctx, m, nil); err != nil {
			return err
		}
	}
	mx := reassigned.max()
	r.row(Row{Key: "worker_reassign_max_ms", Measure: fmt.Sprintf("worker kill→task reassigned, max of %d", kills), Unit: "ms", OurCI: ms(mx),
		Target: "≤ 3000 ms", Result: passIf(mx <= 3*time.Second)})
	const M = MWorker
	r.note(M, "worker kill → its task's next attempt assigned to another node: %s", reassigned.summary())
	r.note(M, "worker kill → next attempt's first instruction: %s", restarted.summary())
	if r.o.WAN {
		r.note(M, "no physical floor: bounded by gossip's failure detection (memberlist's WAN profile: probe every 5 s, suspicion multiplier 6), then one Raft commit")
	} else {
		r.note(M, "no physical floor: bounded by gossip's failure detection (probe every 300 ms, 150 ms timeout, suspicion ≥ 0.9 s for 3 nodes in the LAN profile), then one Raft commit")
	}
	return nil
}

// setDW makes the nodes in on subscribe to "bench-dw" besides their own
// topics (and every other live node not), then waits until the leader's
// gossip view shows exactly those nodes subscribing.
func (r *run) setDW(ctx context.Context, m *mesh, on []int) error {
	want := on
	for i, nd := range m.nodes {
		if nd == nil {
			continue
		}
		topics := m.topics[i]
		if slices.Contains(on, i) {
			topics = append(slices.Clone(topics), node.Topic{Name: "bench-dw"})
		}
		if err := setOffer(nd, topics, r.o.Slots); err != nil {
			return err
		}
	}
	var names []string
	for _, i := range want {
		names = append(names, m.name(i))
	}
	limit := scaled(10 * time.Second)
	deadline := time.Now().Add(limit)
	for {
		l := m.leader()
		if l >= 0 {
			var subs []string
			for _, mb := range m.nodes[l].Status().Members {
				if slices.Contains(mb.Topics, "bench-dw") {
					subs = append(subs, mb.Name)
				}
			}
			if slices.Equal(subs, names) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the leader did not see bench-dw subscribed by %v within %s", errTimeout, names, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// setOffer is nd.SetOffer, made again while gossip reports that it could
// not spread the change in time (memberlist's "timeout waiting for update
// broadcast", after 5 s on a loaded machine): gossip holds the new
// metadata already, but the node keeps its old offer until a SetOffer
// returns nil. Bounded (scaled); other errors return at once.
func setOffer(nd *node.Node, topics []node.Topic, slots int) error {
	limit := scaled(30 * time.Second)
	deadline := time.Now().Add(limit)
	for tries := 1; ; tries++ {
		err := nd.SetOffer(topics, slots)
		if err == nil || !strings.Contains(err.Error(), "gossip: spread metadata") {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: offer not spread by gossip after %d tries in %s: %w", nd.Name(), tries, limit, err)
		}
	}
}
