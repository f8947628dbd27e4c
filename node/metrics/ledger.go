package metrics

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ourci/ourci/raftfsm"
)

var (
	ledgerTasksDesc = prometheus.NewDesc("ourci_ledger_tasks",
		"Tasks in this node's ledger replica by topic and state (every node's replica agrees once it has caught up).", []string{"topic", "state"}, nil)
	ledgerJobsDesc = prometheus.NewDesc("ourci_ledger_jobs",
		"Jobs in this node's ledger replica by state (open, closed).", []string{"state"}, nil)
	ledgerIndexDesc = prometheus.NewDesc("ourci_ledger_applied_index",
		"The last Raft index applied to this node's replica.", nil, nil)
)

type taskKey struct{ topic, state string }

// keyCount is how many of a closed job's tasks have one (topic, state).
type keyCount struct {
	key int32 // into ledgerCollector.keys
	n   int32
}

// jobPos is a job's place in JobOrder, which is sorted by (Index, ID).
type jobPos struct {
	index uint64
	id    string
}

// ledgerCollector counts the replica's tasks by (topic, state) at scrape
// time, under FSM.Read, without walking every task the ledger holds:
//
//   - a closed job's tasks are all terminal and never change again, so each
//     closed job is counted once, into running totals, and its share is
//     kept (a few bytes) for the day the ledger forgets the job (job
//     history), when it is subtracted again;
//   - the open jobs' tasks are counted afresh at every scrape.
//
// JobOrder is sorted by (Index, ID) and only ever loses jobs, so the walk
// starts by binary search after the last job of the counted closed prefix
// (done): a scrape costs O(log jobs + jobs opened since the oldest open
// job + tasks of open jobs) under the read lock, plus O(counted jobs) in a
// scrape that follows a forget.
type ledgerCollector struct {
	fsm *raftfsm.FSM

	mu sync.Mutex // one scrape at a time
	// state is the ledger the counts below describe. A restore (raft
	// installing a snapshot, or an operator's restore of an older one,
	// where closed jobs may be open again) swaps in another: they start
	// over.
	state  *raftfsm.State
	done   jobPos // every job up to here in JobOrder is closed and counted
	jobs   map[string][]keyCount
	keys   []taskKey
	keyIdx map[taskKey]int32
	closed []float64 // by key: tasks of the counted closed jobs
}

func newLedgerCollector(fsm *raftfsm.FSM) *ledgerCollector {
	return &ledgerCollector{fsm: fsm, jobs: map[string][]keyCount{}, keyIdx: map[taskKey]int32{}}
}

func (c *ledgerCollector) key(k taskKey) int32 {
	i, ok := c.keyIdx[k]
	if !ok {
		i = int32(len(c.keys))
		c.keys = append(c.keys, k)
		c.keyIdx[k] = i
		c.closed = append(c.closed, 0)
	}
	return i
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ledgerTasksDesc
	ch <- ledgerJobsDesc
	ch <- ledgerIndexDesc
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live map[int32]float64
	var index uint64
	var open, total int
	c.fsm.Read(func(s *raftfsm.State, idx uint64) {
		if s != c.state {
			c.state, c.done, c.jobs = s, jobPos{}, map[string][]keyCount{}
			clear(c.closed) // the keys stay: a state that empties shows 0
		}
		index, total = idx, len(s.JobOrder)
		live = map[int32]float64{}
		start, _ := slices.BinarySearchFunc(s.JobOrder, c.done, func(id string, p jobPos) int {
			return cmp.Or(cmp.Compare(s.Jobs[id].Index, p.index), cmp.Compare(id, p.id))
		})
		prefix := true // every job walked so far is closed and counted
		for _, id := range s.JobOrder[start:] {
			j := s.Jobs[id]
			_, counted := c.jobs[id]
			switch {
			case counted:
			case j.State == raftfsm.JobClosed:
				c.jobs[id] = c.countClosed(s, j)
			default:
				prefix = false
				open++
				for _, tid := range j.Tasks {
					if t := s.Tasks[tid]; t != nil {
						live[c.key(taskKey{t.Topic, string(t.State)})]++
					}
				}
				continue
			}
			if prefix {
				c.done = jobPos{j.Index, id}
			}
		}
		// The ledger forgot jobs (job history ran out): drop their share.
		if len(c.jobs) > total-open {
			for id, share := range c.jobs {
				if s.Jobs[id] == nil {
					for _, kc := range share {
						c.closed[kc.key] -= float64(kc.n)
					}
					delete(c.jobs, id)
				}
			}
		}
	})
	for i, k := range c.keys { // every key ever seen: a state that empties shows 0
		ch <- prometheus.MustNewConstMetric(ledgerTasksDesc, prometheus.GaugeValue, c.closed[i]+live[int32(i)], k.topic, k.state)
	}
	ch <- prometheus.MustNewConstMetric(ledgerJobsDesc, prometheus.GaugeValue, float64(open), "open")
	ch <- prometheus.MustNewConstMetric(ledgerJobsDesc, prometheus.GaugeValue, float64(total-open), "closed")
	ch <- prometheus.MustNewConstMetric(ledgerIndexDesc, prometheus.GaugeValue, float64(index))
}

// countClosed adds a closed job's tasks to the totals and returns its share.
func (c *ledgerCollector) countClosed(s *raftfsm.State, j *raftfsm.Job) []keyCount {
	share := []keyCount{}
	for _, tid := range j.Tasks {
		t := s.Tasks[tid]
		if t == nil {
			continue
		}
		k := c.key(taskKey{t.Topic, string(t.State)})
		c.closed[k]++
		if i := slices.IndexFunc(share, func(kc keyCount) bool { return kc.key == k }); i >= 0 {
			share[i].n++
		} else {
			share = append(share, keyCount{key: k, n: 1})
		}
	}
	return share
}
