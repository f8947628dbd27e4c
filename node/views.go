package node

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// recentJobs is how many jobs status lists.
const recentJobs = 20

// Status is the mesh as this node sees it: gossip for who is alive, its own
// replica for load and jobs, its Raft configuration for roles.
func (n *Node) Status() api.Status {
	st := api.Status{SchemaVersion: api.SchemaVersion, Node: n.cfg.Name, RaftRole: roleName(n.raft.State())}
	st.Leader = n.leaderName()
	members := n.gossip.Members()
	alive := memberMap(members)
	// Raft servers by ID; a member is shown with the server its data
	// directory is (an old ID of its name is a dead server of its own).
	suffrage := map[raft.ServerID]string{}
	var servers []raft.Server
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
		for _, s := range servers {
			suffrage[s.ID] = map[raft.ServerSuffrage]string{raft.Voter: "voter", raft.Nonvoter: "nonvoter", raft.Staging: "staging"}[s.Suffrage]
		}
	}
	st.Quorum = quorumOf(servers, members)
	n.fsm.Read(func(s *raftfsm.State, idx uint64) {
		st.Index = idx
		usage, logUsage := s.SplitUsage()
		topics := map[string]*api.Topic{}
		for _, m := range members {
			mv := api.Member{
				Name: m.Name, Addr: m.Addr, HTTP: m.Meta.HTTP, RaftAd: m.Meta.Raft, Topics: m.Meta.Topics,
				Slots: m.Meta.Slots, Used: s.Load(m.Name), Raft: suffrage[leader.MemberID(m)], Leader: m.Name == st.Leader, Alive: true,
				Blobs: usage[m.Name][0], Bytes: usage[m.Name][1], Logs: logUsage[m.Name][0], LogBytes: logUsage[m.Name][1], Draining: m.Meta.Draining,
				ID: string(leader.MemberID(m)), Unhealthy: m.Meta.Unhealthy, CatchingUp: m.Meta.CatchingUp, NoVote: m.Meta.NoVote,
				Version: m.Meta.Binary, Schema: memberSchema(m),
			}
			if mv.Raft == "" {
				mv.Raft = "none"
			}
			if mv.Topics == nil {
				mv.Topics = []string{}
			}
			st.Members = append(st.Members, mv)
			for _, t := range m.Meta.Topics {
				tp := topics[t]
				if tp == nil {
					tp = &api.Topic{Name: t}
					topics[t] = tp
				}
				tp.Nodes = append(tp.Nodes, m.Name)
				tp.Slots += m.Meta.Slots
				tp.Used += mv.Used
			}
		}
		// Raft servers no live member is: dead, or an old data directory.
		for _, sv := range servers {
			name := leader.NameOfID(sv.ID)
			if m, ok := alive[name]; ok && leader.MemberID(m) == sv.ID {
				continue
			}
			mv := api.Member{Name: name, ID: string(sv.ID), Raft: suffrage[sv.ID], Topics: []string{}}
			if _, ok := alive[name]; !ok { // the name's load and blobs are the dead node's
				mv.Used, mv.Blobs, mv.Bytes = s.Load(name), usage[name][0], usage[name][1]
			}
			st.Members = append(st.Members, mv)
		}
		for _, t := range s.Queued() {
			tp := topics[t.Topic]
			if tp == nil {
				tp = &api.Topic{Name: t.Topic, Nodes: []string{}}
				topics[t.Topic] = tp
			}
			tp.Queued++
			st.Waiting = append(st.Waiting, api.Waiting{Task: t.ID, Job: t.Job, Topic: t.Topic, Reason: taskWaiting(s, t, members)})
		}
		for _, tp := range topics {
			st.Topics = append(st.Topics, *tp)
		}
		for _, j := range s.RecentJobs(recentJobs) {
			st.Jobs = append(st.Jobs, api.NewJobView(j))
		}
	})
	slices.SortFunc(st.Members, func(a, b api.Member) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Topics, func(a, b api.Topic) int { return cmp.Compare(a.Name, b.Name) })
	if st.Jobs == nil {
		st.Jobs = []api.JobView{}
	}
	if st.Waiting == nil {
		st.Waiting = []api.Waiting{}
	}
	return st
}

// quorumOf sums up the voters: how many gossip sees alive, how many a
// quorum needs, how many more may fail, and a warning when none may.
func quorumOf(servers []raft.Server, members []gossip.Member) api.Quorum {
	live := map[raft.ServerID]bool{}
	for _, m := range members {
		live[leader.MemberID(m)] = true
	}
	var q api.Quorum
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			q.Voters++
			if live[s.ID] {
				q.Alive++
			}
		}
	}
	if q.Voters == 0 {
		return q
	}
	q.Needed = q.Voters/2 + 1
	q.Tolerates = q.Alive - q.Needed
	switch {
	case q.Tolerates < 0:
		q.Warning = fmt.Sprintf("no quorum: %d of %d voters alive, %d needed; the mesh accepts no work until voters come back (or see docs/OPERATIONS.md, quorum loss)", q.Alive, q.Voters, q.Needed)
	case q.Tolerates == 0 && len(members) > 1:
		q.Warning = fmt.Sprintf("the quorum is one failure away: %d of %d voters alive, %d needed", q.Alive, q.Voters, q.Needed)
	}
	return q
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Follower:
		return "follower"
	}
	return "shutdown"
}

// jobDetail reads a job and its tasks from the local replica.
func (n *Node) jobDetail(id string) (api.JobDetail, bool) {
	d := api.JobDetail{SchemaVersion: api.SchemaVersion}
	found := false
	members := n.gossip.Members()
	n.fsm.Read(func(s *raftfsm.State, idx uint64) {
		j := s.Jobs[id]
		if j == nil {
			return
		}
		found = true
		d.Index = j.Modified
		d.Job = api.NewJobView(j)
		d.Tasks = make([]api.TaskView, 0, len(j.Tasks))
		for _, t := range s.JobTasks(id) {
			v := api.NewTaskView(t)
			if t.State == raftfsm.TaskQueued {
				v.Waiting = taskWaiting(s, t, members)
			}
			d.Tasks = append(d.Tasks, v)
		}
	})
	return d, found
}

// taskWaiting says why a queued task does not run yet.
func taskWaiting(s *raftfsm.State, t *raftfsm.Task, members []gossip.Member) string {
	if s.Jobs[t.Job].Held {
		return "its job waits for approval: ourci-node approve " + t.Job
	}
	return waitingReason(t.Topic, members, s.Load, func(node string) string {
		if r := s.Rigs[raftfsm.RigKey(node, t.Topic)]; r != nil && r.Quarantined {
			return "quarantined: " + r.Reason
		}
		return ""
	})
}
