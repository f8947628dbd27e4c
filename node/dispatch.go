package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// The dispatcher is the leader's single writer. Every proposal goes through
// it: requests that arrive while Raft entries are in flight are batched
// into the next entry, and it alone chooses nodes for tasks, so no two
// choices can double-book a slot.
//
// It pipelines: up to maxInFlight entries are proposed and not yet applied
// at once, so the next batch is appended to the log while the previous one
// is replicated and committed. Raft keeps them in the order proposed, and
// each replica applies them in that order, so Apply stays a pure function of
// the log. The picker counts the assignments of the entries still in flight
// (see flying) as taken slots, and leaves the queued tasks they assign alone.
type dispatcher struct {
	n     *Node
	reqs  chan *proposal
	kickC chan struct{}
	depth int // entries in flight at most

	// propose hands an encoded entry to Raft; members is the live gossip
	// view. Fields so a unit test can stand in for Raft and gossip.
	propose func(b []byte) raft.ApplyFuture
	members func() []gossip.Member

	mu     sync.Mutex
	flying map[*flight]struct{} // proposed, not yet answered
}

// maxBatch bounds the commands in one Raft entry.
const maxBatch = 256

// maxInFlight bounds the entries proposed and not yet applied. Two overlap
// one entry's disk write on the leader with the previous one's replication;
// more make smaller batches without a further overlap to gain (Raft writes
// the log and answers futures from one goroutine each).
const maxInFlight = 2

type proposal struct {
	cmd  raftfsm.Command // for a spawn, Assign is filled in by the dispatcher
	done chan outcome
}

type outcome struct {
	res raftfsm.Result
	err error
}

// flight is one proposed entry until its proposals have their outcomes.
type flight struct {
	batch []*proposal
	spans []span
	cmds  int // commands in the entry
	f     raft.ApplyFuture
	start time.Time
	// choices are the slots this entry takes (spawns assigned on the spot,
	// queued tasks assigned), counted by later pickers until it applied.
	choices []choice
}

// span is where a proposal's commands sit in the entry: a proposal may
// itself be a batch (a webhook's closes and spawn, the loss loop's
// requeues); its parts are spliced in, never nested, and it gets back the
// results of its own parts.
type span struct {
	start, n int
	batch    bool
}

// choice is one task attempt the picker gave a node.
type choice struct {
	task    string
	attempt int
	node    string
}

// errNotLeader is returned to callers when leadership moved; they retry on
// the new leader (spawns carry an idempotency key for this).
var errNotLeader = errors.New("node: not the leader")

func newDispatcher(n *Node) *dispatcher {
	d := &dispatcher{
		n: n, reqs: make(chan *proposal, 4*maxBatch), kickC: make(chan struct{}, 1), depth: maxInFlight,
		members: func() []gossip.Member { return n.gossip.Members() },
		flying:  map[*flight]struct{}{},
	}
	d.propose = func(b []byte) raft.ApplyFuture { return n.raft.Apply(b, 10*time.Second) }
	return d
}

// ErrNotYet: a command needs a ledger schema some voter's binary does not
// know yet; it is held back until every voter runs one that does.
var ErrNotYet = errors.New("node: not every voter knows this command yet")

// submit proposes c and waits until it is applied (or refused).
func (d *dispatcher) Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	if need := c.NeedsSchema(); need > 1 {
		if err := d.n.schemaReady(need); err != nil {
			return raftfsm.Result{}, err
		}
	}
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

// run proposes rounds until ctx ends; a second goroutine waits for each
// entry in turn and answers its proposals. A round starts once fewer than
// depth entries are in flight, and takes everything queued meanwhile.
func (d *dispatcher) run(ctx context.Context) {
	slots := make(chan struct{}, d.depth)
	flights := make(chan *flight, d.depth)
	landed := make(chan struct{})
	go func() {
		defer close(landed)
		for fl := range flights {
			d.land(fl)
			<-slots
		}
	}()
	defer func() {
		close(flights)
		<-landed
		d.drain()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
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
		if ctx.Err() != nil { // leadership ended while the batch filled
			for _, p := range batch {
				p.done <- outcome{err: errNotLeader}
			}
			return
		}
		if fl := d.round(batch, kicked); fl != nil {
			flights <- fl // never blocks: slots bounds the flights
		} else {
			<-slots
		}
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
// Raft entry and proposes it. It returns the entry in flight, or nil when
// there was nothing to propose or it could not be (the batch is answered).
func (d *dispatcher) round(batch []*proposal, kicked bool) *flight {
	now := d.n.cfg.Clock.Now().UTC()
	var parents []string
	addParent := func(c raftfsm.Command) {
		if c.Type == raftfsm.CmdSpawn && c.Spawn.Parent != "" {
			parents = append(parents, c.Spawn.Parent)
		}
	}
	for _, p := range batch {
		addParent(p.cmd)
		for _, c := range p.cmd.Batch {
			addParent(c)
		}
	}
	pick := d.newPicker(parents)
	fl := &flight{batch: batch, spans: make([]span, len(batch))}
	cmds := make([]raftfsm.Command, 0, len(batch)+1)
	for i, p := range batch {
		parts := []raftfsm.Command{p.cmd}
		if p.cmd.Type == raftfsm.CmdBatch {
			parts = p.cmd.Batch
		}
		fl.spans[i] = span{start: len(cmds), n: len(parts), batch: p.cmd.Type == raftfsm.CmdBatch}
		for _, c := range parts {
			if c.Type == raftfsm.CmdSpawn {
				sp := *c.Spawn
				sp.At = now
				if sp.NewJob == nil || !sp.NewJob.Held {
					sp.Assign = pick.choose(sp.Topic, nil, pick.spawnOrigin(&sp))
					if sp.Assign != "" {
						fl.choices = append(fl.choices, choice{task: sp.Task, attempt: 1, node: sp.Assign})
					}
				}
				c.Spawn = &sp
			}
			cmds = append(cmds, c)
		}
	}
	if kicked {
		if a := pick.assignQueued(now); a != nil {
			cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdAssign, Assign: a})
			for _, it := range a.Items {
				fl.choices = append(fl.choices, choice{task: it.Task, attempt: it.Attempt, node: it.Node})
			}
		}
	}
	if len(cmds) == 0 {
		for _, p := range batch {
			p.done <- outcome{res: raftfsm.Result{}}
		}
		return nil
	}
	entry := cmds[0]
	if len(cmds) > 1 {
		entry = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
	}
	fl.cmds = len(cmds)
	b, err := raftfsm.Encode(entry)
	if err != nil {
		for _, p := range batch {
			p.done <- outcome{err: err}
		}
		return nil
	}
	d.mu.Lock()
	d.flying[fl] = struct{}{}
	d.mu.Unlock()
	fl.start = time.Now() // metrics: Raft commit time
	fl.f = d.propose(b)
	return fl
}

// land waits until fl's entry is applied (or failed) and answers its
// proposals; from then on the ledger itself counts its choices.
func (d *dispatcher) land(fl *flight) {
	res, err := d.wait(fl)
	d.mu.Lock()
	delete(d.flying, fl)
	d.mu.Unlock()
	results := []raftfsm.Result{res}
	if fl.cmds > 1 && err == nil {
		results = res.Batch
	}
	for i, p := range fl.batch {
		sp := fl.spans[i]
		switch {
		case err != nil:
			p.done <- outcome{err: err}
		case sp.batch:
			p.done <- outcome{res: raftfsm.Result{Batch: results[sp.start : sp.start+sp.n]}}
		default:
			p.done <- outcome{res: results[sp.start]}
		}
	}
	if err != nil && len(fl.batch) == 0 {
		d.n.log.Warn("node: assignment round", "err", err)
	}
}

func (d *dispatcher) wait(fl *flight) (raftfsm.Result, error) {
	f := fl.f
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
		if d.n.replicaFrozen() {
			// Its own Raft log could not take the entry (a full disk):
			// not committed, and raft steps this leader down. Retryable,
			// like any change of leader.
			return raftfsm.Result{}, fmt.Errorf("%w: this leader cannot write its Raft log (%s): %w", errNotLeader, d.n.Unhealthy(), err)
		}
		return raftfsm.Result{}, fmt.Errorf("node: raft apply: %w", err)
	}
	d.n.metrics.RaftCommitted(time.Since(fl.start), fl.cmds) // metrics
	r, ok := f.Response().(raftfsm.Result)
	if !ok {
		return raftfsm.Result{}, fmt.Errorf("node: raft apply: unexpected response %T", f.Response())
	}
	return r, nil
}

// picker chooses nodes for tasks from the live gossip view and the ledger's
// load, counting the choices it has already made in this round and those
// of the entries still in flight.
type picker struct {
	members []gossip.Member
	load    map[string]int
	queued  []*raftfsm.Task
	origins map[string]topic.Origin // of the queued tasks, by ID
	parents map[string]string       // the topics of this round's spawning tasks, by task ID
}

func (d *dispatcher) newPicker(parents []string) *picker {
	p := &picker{members: d.members(), load: map[string]int{}, origins: map[string]topic.Origin{}, parents: map[string]string{}}
	// Copy the flights' choices before reading the ledger: an entry that
	// lands in between shows in both, and is counted once (applied below).
	d.mu.Lock()
	var flying []choice
	for fl := range d.flying {
		flying = append(flying, fl.choices...)
	}
	d.mu.Unlock()
	d.n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		for _, m := range p.members {
			p.load[m.Name] = s.Load(m.Name)
		}
		taken := map[string]bool{}
		for _, c := range flying {
			if applied(s, c) {
				continue // the ledger's load counts it already
			}
			p.load[c.node]++
			taken[c.task] = true
		}
		for _, id := range parents {
			if t := s.Tasks[id]; t != nil {
				p.parents[id] = t.Topic
			}
		}
		for _, t := range s.Queued() {
			if !s.Jobs[t.Job].Held && !taken[t.ID] {
				p.queued = append(p.queued, t.Clone())
				p.origins[t.ID] = topic.OriginOf(s, t)
			}
		}
	})
	return p
}

// spawnOrigin is where a spawn in this round comes from.
func (p *picker) spawnOrigin(sp *raftfsm.Spawn) topic.Origin {
	if sp.Parent == "" {
		return topic.Origin{Operator: true}
	}
	return topic.Origin{ParentTopic: p.parents[sp.Parent], ParentKind: sp.ParentKind}
}

// applied reports whether the ledger already shows the choice's entry:
// the task exists and has left the queue for that attempt (or moved past
// it). A choice whose entry applied, but refused it, stays counted until
// the entry's flight lands: a slot left idle for one commit, never two
// tasks in one slot.
func applied(s *raftfsm.State, c choice) bool {
	t := s.Tasks[c.task]
	return t != nil && (t.Attempt > c.attempt || t.State != raftfsm.TaskQueued)
}

// choose returns the least-loaded live subscriber of topic with a free
// slot, or "" to leave the task queued. Ties go to the lower fill ratio,
// then the name, so the choice is stable. Nodes in avoid (sorted: where an
// attempt of the task failed for the infrastructure) are passed over while
// any other node that takes work serves the topic, busy or not.
func (p *picker) choose(topic string, avoid []string, o topic.Origin) string {
	others := false
	if len(avoid) > 0 {
		for _, m := range p.members {
			if _, bad := slices.BinarySearch(avoid, m.Name); !bad && m.Meta.Takes() && m.Meta.Subscribes(topic) && memberAccepts(m, topic, o) {
				others = true
				break
			}
		}
	}
	best := -1
	for i, m := range p.members {
		if !m.Meta.Takes() || !m.Meta.Subscribes(topic) || p.load[m.Name] >= m.Meta.Slots || !memberAccepts(m, topic, o) {
			continue
		}
		if _, bad := slices.BinarySearch(avoid, m.Name); bad && others {
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
		if node := p.choose(t.Topic, t.Avoid, p.origins[t.ID]); node != "" {
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
	var unhealthy, catching []string
	for _, m := range members {
		if !m.Meta.Subscribes(topic) || m.Meta.Draining {
			continue
		}
		switch {
		case m.Meta.Unhealthy != "":
			unhealthy = append(unhealthy, m.Name+" ("+m.Meta.Unhealthy+")")
		case m.Meta.CatchingUp:
			catching = append(catching, m.Name)
		default:
			subs++
			slots += m.Meta.Slots
			used += load(m.Name)
		}
	}
	switch {
	case subs == 0 && len(unhealthy) > 0:
		return fmt.Sprintf("every node serving %s is unhealthy: %s", topic, strings.Join(unhealthy, "; "))
	case subs == 0 && len(catching) > 0:
		return fmt.Sprintf("the node(s) serving %s are catching up with the ledger: %s", topic, strings.Join(catching, ", "))
	case subs == 0:
		return "no node subscribes to " + topic
	case used >= slots:
		return fmt.Sprintf("all %d slots on the %d node(s) subscribed to %s are busy", slots, subs, topic)
	}
	return "waiting for the leader to assign it"
}
