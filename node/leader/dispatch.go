package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// The Dispatcher is the leader's single writer (the Writer of its duties
// and of the node's handlers while it leads). Every proposal goes through
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
type Dispatcher struct {
	c     DispatcherConfig
	reqs  chan *proposal
	kickC chan struct{}

	mu     sync.Mutex
	flying map[*flight]struct{} // proposed, not yet answered
}

// DispatcherConfig is what a dispatcher needs of its node.
type DispatcherConfig struct {
	// Propose hands an encoded entry to Raft (the leader's raft.Apply).
	Propose func(b []byte) raft.ApplyFuture
	// Members is the live gossip view the picker chooses from.
	Members func() []gossip.Member
	// Ledger is the leader's replica (its load and queue).
	Ledger interface {
		Read(fn func(s *raftfsm.State, index uint64))
	}
	// Clock stamps the commands' times (stamp).
	Clock clock.Clock
	// Limits are written into the commands that carry one (stamp).
	Limits Limits
	Log    *slog.Logger
	// Gate refuses a command that needs ledger schema need while some
	// voter's binary does not know it (nil: every command goes).
	Gate func(need int) error
	// Frozen says why the leader's Raft log cannot be written ("" when it
	// can): a failed entry is then retryable, as a change of leader is.
	Frozen func() string
	// Committed is told each committed entry's commit time and commands
	// (metrics; nil: not counted).
	Committed func(d time.Duration, commands int)
	// Stopping is closed when the node shuts down: no future is waited
	// for past it.
	Stopping <-chan struct{}
	// Depth bounds the entries proposed and not yet applied (0:
	// MaxInFlight).
	Depth int
}

// maxBatch bounds the commands in one Raft entry.
const maxBatch = 256

// MaxInFlight bounds the entries proposed and not yet applied. Two overlap
// one entry's disk write on the leader with the previous one's replication;
// more make smaller batches without a further overlap to gain (Raft writes
// the log and answers futures from one goroutine each).
const MaxInFlight = 2

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

// ErrNotYet: a command needs a ledger schema some voter's binary does not
// know yet (DispatcherConfig.Gate); it is held back until every voter runs
// one that does.
var ErrNotYet = errors.New("node: not every voter knows this command yet")

// ErrNotLeader is returned to callers when leadership moved; they retry
// on the new leader (spawns carry an idempotency key for this).
var ErrNotLeader = errors.New("leader: not the leader")

// NewDispatcher returns a dispatcher; Run makes it propose.
func NewDispatcher(c DispatcherConfig) *Dispatcher {
	if c.Depth <= 0 {
		c.Depth = MaxInFlight
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{c: c, reqs: make(chan *proposal, 4*maxBatch), kickC: make(chan struct{}, 1), flying: map[*flight]struct{}{}}
}

// Submit proposes c and waits until it is applied (or refused): the
// Writer of the leader's duties.
func (d *Dispatcher) Submit(ctx context.Context, c raftfsm.Command) (raftfsm.Result, error) {
	if need := c.NeedsSchema(); need > 1 && d.c.Gate != nil {
		if err := d.c.Gate(need); err != nil {
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

// Kick asks for an assignment round (the queue changed, or the mesh).
func (d *Dispatcher) Kick() {
	select {
	case d.kickC <- struct{}{}:
	default:
	}
}

// Run proposes rounds until ctx ends (leadership lost); a second
// goroutine waits for each entry in turn and answers its proposals. A
// round starts once fewer than Depth entries are in flight, and takes
// everything queued meanwhile. Everything submitted gets an answer: what
// is still queued when it returns, ErrNotLeader.
func (d *Dispatcher) Run(ctx context.Context) {
	slots := make(chan struct{}, d.c.Depth)
	flights := make(chan *flight, d.c.Depth)
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
				p.done <- outcome{err: ErrNotLeader}
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
func (d *Dispatcher) drain() {
	for {
		select {
		case p := <-d.reqs:
			p.done <- outcome{err: ErrNotLeader}
		default:
			return
		}
	}
}

// round turns a batch of requests (and, if kicked, the queue) into one
// Raft entry and proposes it. It returns the entry in flight, or nil when
// there was nothing to propose or it could not be (the batch is answered).
func (d *Dispatcher) round(batch []*proposal, kicked bool) *flight {
	now := d.c.Clock.Now().UTC()
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
	gate := &roundGate{gate: d.c.Gate}
	// The queue first: a slot that frees up goes to the tasks that waited
	// for it, in the queue's order (priority, then the older job), before
	// this round's spawns take what is left.
	var queued *raftfsm.Assign
	if kicked {
		queued = pick.assignQueued(now)
	}
	fl := &flight{batch: batch, spans: make([]span, len(batch))}
	cmds := make([]raftfsm.Command, 0, len(batch)+1)
	for i, p := range batch {
		parts := []raftfsm.Command{p.cmd}
		if p.cmd.Type == raftfsm.CmdBatch {
			parts = p.cmd.Batch
		}
		fl.spans[i] = span{start: len(cmds), n: len(parts), batch: p.cmd.Type == raftfsm.CmdBatch}
		for _, c := range parts {
			d.stamp(&c, now, gate)
			if sp := c.Spawn; c.Type == raftfsm.CmdSpawn && sp != nil && (sp.NewJob == nil || !sp.NewJob.Held) {
				sp.Assign = pick.choose(sp.Topic, nil, pick.spawnOrigin(sp))
				if sp.Assign != "" {
					fl.choices = append(fl.choices, choice{task: sp.Task, attempt: 1, node: sp.Assign})
				}
			}
			cmds = append(cmds, c)
		}
	}
	if queued != nil {
		cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdAssign, Assign: queued})
		for _, it := range queued.Items {
			fl.choices = append(fl.choices, choice{task: it.Task, attempt: it.Attempt, node: it.Node})
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
	fl.f = d.c.Propose(b)
	return fl
}

// land waits until fl's entry is applied (or failed) and answers its
// proposals; from then on the ledger itself counts its choices.
func (d *Dispatcher) land(fl *flight) {
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
		d.c.Log.Warn("leader: assignment round", "err", err)
	}
}

func (d *Dispatcher) wait(fl *flight) (raftfsm.Result, error) {
	f := fl.f
	// raft answers every future it took, except one still queued when it
	// shuts down: never wait past the node's own shutdown.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var ferr error
	select {
	case ferr = <-done:
	case <-d.c.Stopping:
		return raftfsm.Result{}, fmt.Errorf("%w: node shutting down", ErrNotLeader)
	}
	if err := ferr; err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return raftfsm.Result{}, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		if why := d.frozen(); why != "" {
			// Its own Raft log could not take the entry (a full disk):
			// not committed, and raft steps this leader down. Retryable,
			// like any change of leader.
			return raftfsm.Result{}, fmt.Errorf("%w: this leader cannot write its Raft log (%s): %w", ErrNotLeader, why, err)
		}
		return raftfsm.Result{}, fmt.Errorf("leader: raft apply: %w", err)
	}
	if d.c.Committed != nil {
		d.c.Committed(time.Since(fl.start), fl.cmds)
	}
	r, ok := f.Response().(raftfsm.Result)
	if !ok {
		return raftfsm.Result{}, fmt.Errorf("leader: raft apply: unexpected response %T", f.Response())
	}
	return r, nil
}

func (d *Dispatcher) frozen() string {
	if d.c.Frozen == nil {
		return ""
	}
	return d.c.Frozen()
}
