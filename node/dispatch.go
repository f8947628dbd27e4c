package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/raftfsm"
)

// The dispatcher is the leader's single writer. Every proposal goes through
// it: requests that arrive while one Raft apply is in flight are batched
// into the next entry, and it alone chooses nodes for tasks, so no two
// choices can double-book a slot.
type dispatcher struct {
	n     *Node
	reqs  chan *proposal
	kickC chan struct{}
}

// maxBatch bounds the commands in one Raft entry.
const maxBatch = 256

type proposal struct {
	cmd  raftfsm.Command // for a spawn, Assign is filled in by the dispatcher
	done chan outcome
}

type outcome struct {
	res raftfsm.Result
	err error
}

// errNotLeader is returned to callers when leadership moved; they retry on
// the new leader (spawns carry an idempotency key for this).
var errNotLeader = errors.New("node: not the leader")

func newDispatcher(n *Node) *dispatcher {
	return &dispatcher{n: n, reqs: make(chan *proposal, 4*maxBatch), kickC: make(chan struct{}, 1)}
}

// submit proposes c and waits until it is applied (or refused).
func (d *dispatcher) submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	p := &proposal{cmd: c, done: make(chan outcome, 1)}
	select {
	case d.reqs <- p:
	case <-ctx.Done():
		return raftfsm.Result{}, ctx.Err()
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return raftfsm.Result{}, ctx.Err()
	}
}

// kick asks for an assignment round.
func (d *dispatcher) kick() {
	select {
	case d.kickC <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run(ctx context.Context) {
	defer d.drain()
	for {
		var batch []*proposal
		kicked := false
		select {
		case <-ctx.Done():
			return
		case p := <-d.reqs:
			batch = append(batch, p)
		case <-d.kickC:
			kicked = true
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-d.reqs:
				batch = append(batch, p)
			case <-d.kickC:
				kicked = true
			default:
				break fill
			}
		}
		d.round(batch, kicked)
	}
}

// drain answers whatever is still queued once leadership ended.
func (d *dispatcher) drain() {
	for {
		select {
		case p := <-d.reqs:
			p.done <- outcome{err: errNotLeader}
		default:
			return
		}
	}
}

// round turns a batch of requests (and, if kicked, the queue) into one
// Raft entry and hands each request its result.
func (d *dispatcher) round(batch []*proposal, kicked bool) {
	now := d.n.cfg.Clock.Now().UTC()
	pick := d.n.newPicker()
	// A proposal may itself be a batch (a webhook's closes and spawn, the
	// loss loop's requeues): its parts are spliced in, never nested, and
	// it gets back the results of its own parts.
	type span struct {
		start, n int
		batch    bool
	}
	spans := make([]span, len(batch))
	cmds := make([]raftfsm.Command, 0, len(batch)+1)
	for i, p := range batch {
		parts := []raftfsm.Command{p.cmd}
		if p.cmd.Type == raftfsm.CmdBatch {
			parts = p.cmd.Batch
		}
		spans[i] = span{start: len(cmds), n: len(parts), batch: p.cmd.Type == raftfsm.CmdBatch}
		for _, c := range parts {
			if c.Type == raftfsm.CmdSpawn {
				sp := *c.Spawn
				sp.At = now
				if sp.NewJob == nil || !sp.NewJob.Held {
					sp.Assign = pick.choose(sp.Topic)
				}
				c.Spawn = &sp
			}
			cmds = append(cmds, c)
		}
	}
	if kicked {
		if a := pick.assignQueued(now); a != nil {
			cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdAssign, Assign: a})
		}
	}
	if len(cmds) == 0 {
		for _, p := range batch {
			p.done <- outcome{res: raftfsm.Result{}}
		}
		return
	}
	entry := cmds[0]
	if len(cmds) > 1 {
		entry = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
	}
	res, err := d.apply(entry)
	results := []raftfsm.Result{res}
	if len(cmds) > 1 {
		results = res.Batch
	}
	for i, p := range batch {
		sp := spans[i]
		switch {
		case err != nil:
			p.done <- outcome{err: err}
		case sp.batch:
			p.done <- outcome{res: raftfsm.Result{Batch: results[sp.start : sp.start+sp.n]}}
		default:
			p.done <- outcome{res: results[sp.start]}
		}
	}
	if err != nil && len(batch) == 0 {
		d.n.log.Warn("node: assignment round", "err", err)
	}
}

func (d *dispatcher) apply(c raftfsm.Command) (raftfsm.Result, error) {
	b, err := raftfsm.Encode(c)
	if err != nil {
		return raftfsm.Result{}, err
	}
	start := time.Now() // metrics: Raft commit time
	f := d.n.raft.Apply(b, 10*time.Second)
	// raft answers every future it took, except one still queued when it
	// shuts down: never wait past the node's own shutdown.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var ferr error
	select {
	case ferr = <-done:
	case <-d.n.ctx.Done():
		return raftfsm.Result{}, fmt.Errorf("%w: node shutting down", errNotLeader)
	}
	if err := ferr; err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return raftfsm.Result{}, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		return raftfsm.Result{}, fmt.Errorf("node: raft apply: %w", err)
	}
	d.n.metrics.RaftCommitted(time.Since(start), entryCommands(c)) // metrics
	r, ok := f.Response().(raftfsm.Result)
	if !ok {
		return raftfsm.Result{}, fmt.Errorf("node: raft apply: unexpected response %T", f.Response())
	}
	return r, nil
}

// picker chooses nodes for tasks from the live gossip view and the ledger's
// load, counting the choices it has already made in this round.
type picker struct {
	n       *Node
	members []gossip.Member
	load    map[string]int
	queued  []*raftfsm.Task
}

func (n *Node) newPicker() *picker {
	p := &picker{n: n, members: n.gossip.Members(), load: map[string]int{}}
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, m := range p.members {
			p.load[m.Name] = s.Load(m.Name)
		}
		for _, t := range s.Queued() {
			if !s.Jobs[t.Job].Held {
				p.queued = append(p.queued, t.Clone())
			}
		}
	})
	return p
}

// choose returns the least-loaded live subscriber of topic with a free
// slot, or "" to leave the task queued. Ties go to the lower fill ratio,
// then the name, so the choice is stable.
func (p *picker) choose(topic string) string {
	best := -1
	for i, m := range p.members {
		if m.Meta.Draining || !m.Meta.Subscribes(topic) || p.load[m.Name] >= m.Meta.Slots {
			continue
		}
		if best < 0 || p.less(m, p.members[best]) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	name := p.members[best].Name
	p.load[name]++
	return name
}

func (p *picker) less(a, b gossip.Member) bool {
	la, lb := p.load[a.Name], p.load[b.Name]
	// Compare la/sa < lb/sb without division.
	return cmp.Or(cmp.Compare(la*b.Meta.Slots, lb*a.Meta.Slots), cmp.Compare(la, lb), cmp.Compare(a.Name, b.Name)) < 0
}

// assignQueued hands queued tasks, oldest first, to free slots.
func (p *picker) assignQueued(now time.Time) *raftfsm.Assign {
	var items []raftfsm.Assignment
	for _, t := range p.queued {
		if len(items) == maxBatch {
			break
		}
		if node := p.choose(t.Topic); node != "" {
			items = append(items, raftfsm.Assignment{Task: t.ID, Attempt: t.Attempt, Node: node})
		}
	}
	if len(items) == 0 {
		return nil
	}
	return &raftfsm.Assign{Items: items, At: now}
}

// waitingReason says why a queued task has no node yet.
func waitingReason(topic string, members []gossip.Member, load func(string) int) string {
	subs, slots, used := 0, 0, 0
	for _, m := range members {
		if m.Meta.Subscribes(topic) && !m.Meta.Draining {
			subs++
			slots += m.Meta.Slots
			used += load(m.Name)
		}
	}
	switch {
	case subs == 0:
		return "no node subscribes to " + topic
	case used >= slots:
		return fmt.Sprintf("all %d slots on the %d node(s) subscribed to %s are busy", slots, subs, topic)
	}
	return "waiting for the leader to assign it"
}
