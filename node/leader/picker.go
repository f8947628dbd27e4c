package leader

import (
	"cmp"
	"slices"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// picker chooses nodes for tasks from the live gossip view and the ledger's
// load, counting the choices it has already made in this round and those
// of the entries still in flight.
type picker struct {
	members []gossip.Member
	load    map[string]int
	queued  []*raftfsm.Task
	origins map[string]topic.Origin // of the queued tasks, by ID
	parents map[string]string       // the topics of this round's spawning tasks, by task ID
	// quarantined are the rigs (raftfsm.RigKey: node, topic) the ledger
	// took out of their topic's service: they get no new task of it.
	quarantined map[string]bool
}

func (d *Dispatcher) newPicker(parents []string) *picker {
	p := &picker{members: d.c.Members(), load: map[string]int{}, origins: map[string]topic.Origin{}, parents: map[string]string{}, quarantined: map[string]bool{}}
	// Copy the flights' choices before reading the ledger: an entry that
	// lands in between shows in both, and is counted once (applied below).
	d.mu.Lock()
	var flying []choice
	for fl := range d.flying {
		flying = append(flying, fl.choices...)
	}
	d.mu.Unlock()
	d.c.Ledger.Read(func(s *raftfsm.State, _ uint64) {
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
		jobAge := map[string]uint64{}
		for _, t := range s.Queued() {
			if j := s.Jobs[t.Job]; !j.Held && !taken[t.ID] {
				p.queued = append(p.queued, t.Clone())
				p.origins[t.ID] = topic.OriginOf(s, t)
				jobAge[t.Job] = j.Index
			}
		}
		// The queue's order (docs/ARCHITECTURE.md, "Priorities"): higher
		// priority first; within one, the older job's tasks (a running
		// job's late stages are not starved by the first stages of jobs
		// that came later); within a job, the older task.
		slices.SortStableFunc(p.queued, func(a, b *raftfsm.Task) int {
			return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(jobAge[a.Job], jobAge[b.Job]))
		})
		for k, r := range s.Rigs {
			if r.Quarantined {
				p.quarantined[k] = true
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

// choose returns the least-loaded live subscriber of topic name with a free
// slot, or "" to leave the task queued. Ties go to the lower fill ratio,
// then the name, so the choice is stable. Nodes in avoid (sorted: where an
// attempt of the task failed for the infrastructure) are passed over while
// any other node that takes work serves the topic, busy or not.
func (p *picker) choose(name string, avoid []string, o topic.Origin) string {
	others := false
	if len(avoid) > 0 {
		for _, m := range p.members {
			if _, bad := slices.BinarySearch(avoid, m.Name); !bad && m.Meta.Takes() && m.Meta.Subscribes(name) && topic.MemberAccepts(m.Meta.Kinds, name, o) && !p.quarantined[raftfsm.RigKey(m.Name, name)] {
				others = true
				break
			}
		}
	}
	best := -1
	for i, m := range p.members {
		if !m.Meta.Takes() || !m.Meta.Subscribes(name) || p.load[m.Name] >= m.Meta.Slots || !topic.MemberAccepts(m.Meta.Kinds, name, o) || p.quarantined[raftfsm.RigKey(m.Name, name)] {
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
	chosen := p.members[best].Name
	p.load[chosen]++
	return chosen
}

func (p *picker) less(a, b gossip.Member) bool {
	la, lb := p.load[a.Name], p.load[b.Name]
	// Compare la/sa < lb/sb without division.
	return cmp.Or(cmp.Compare(la*b.Meta.Slots, lb*a.Meta.Slots), cmp.Compare(la, lb), cmp.Compare(a.Name, b.Name)) < 0
}

// assignQueued hands queued tasks, in the queue's order (newPicker), to
// free slots.
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
