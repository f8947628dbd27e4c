package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/raftfsm"
)

// githubWindow is how many recent jobs the leader checks for commit
// statuses and notifications still owed (besides every open job).
const githubWindow = 500

// githubLoop (leader) sends GitHub what the ledger says it has not
// acknowledged yet: the commit status each job's state implies, and the
// failure and recovery notifications. After a leader change the new leader
// sends what is missing; a send that fails is retried, and never holds up
// a job.
func (n *Node) githubLoop(ctx context.Context, d *dispatcher) {
	gh := n.cfg.GitHub
	if gh == nil {
		return
	}
	var statuses *github.Statuses
	if gh.Token != "" {
		var err error
		if statuses, err = github.NewStatuses(gh.Token, gh.APIURL, n.extHTTP); err != nil {
			n.log.Error("github: commit statuses off", "err", err)
			statuses = nil
		}
	}
	var mu sync.Mutex
	busy := map[string]bool{}    // "status/JOB" or "notify/JOB" in flight
	given := map[string]string{} // JOB → desired state that failed for good
	for {
		_, ch := n.fsm.Watch()
		type work struct {
			job          raftfsm.Job
			state, desc  string
			notify, prev string
		}
		var todo []work
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			seen := map[string]bool{}
			for _, j := range append(s.OpenJobs(), s.RecentJobs(githubWindow)...) {
				if j.GitHub == nil || seen[j.ID] {
					continue
				}
				seen[j.ID] = true
				w := work{job: *j.Clone()}
				w.state, w.desc = desiredStatus(j)
				if j.GitHub.Reported == "" && w.state != "pending" {
					// A job's first status is pending, even when it failed
					// (or passed) before GitHub heard of it; the real state
					// follows in the next round.
					w.state, w.desc = "pending", "running: "+w.desc
				}
				if statuses == nil || w.state == j.GitHub.Reported {
					w.state = ""
				}
				if gh.Notify != nil {
					w.notify = notifyKind(s, j)
				}
				if w.state != "" || w.notify != "" {
					todo = append(todo, w)
				}
			}
		})
		for _, w := range todo {
			id := w.job.ID
			mu.Lock()
			sendStatus := w.state != "" && !busy["status/"+id] && given[id] != w.state
			sendNote := w.notify != "" && !busy["notify/"+id]
			if sendStatus {
				busy["status/"+id] = true
			}
			if sendNote {
				busy["notify/"+id] = true
			}
			mu.Unlock()
			if sendStatus {
				n.goFunc(func() {
					defer func() { mu.Lock(); delete(busy, "status/"+id); mu.Unlock() }()
					g := w.job.GitHub
					err := statuses.Set(ctx, g.Owner, g.Name, w.job.Source.SHA, w.state, n.jobURL(id), w.desc)
					if err != nil {
						n.log.Warn("github: commit status not delivered", "job", id, "state", w.state, "err", err)
						if errors.Is(err, github.ErrPermanent) {
							mu.Lock()
							given[id] = w.state
							mu.Unlock()
						}
						return
					}
					n.record(ctx, d, &raftfsm.Reported{Job: id, Status: w.state})
				})
			}
			if sendNote {
				n.goFunc(func() {
					defer func() { mu.Lock(); delete(busy, "notify/"+id); mu.Unlock() }()
					if err := n.notify(ctx, statuses, w.job, w.notify); err != nil {
						n.log.Warn("github: notification not delivered; will retry", "job", id, "kind", w.notify, "err", err)
						return
					}
					n.record(ctx, d, &raftfsm.Reported{Job: id, Notified: w.notify})
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(30 * time.Second): // retry what failed
		}
	}
}

func (n *Node) record(ctx context.Context, d *dispatcher, r *raftfsm.Reported) {
	if _, err := d.submit(ctx, raftfsm.Command{Type: raftfsm.CmdReported, Reported: r}); err != nil && ctx.Err() == nil {
		n.log.Warn("github: recording what was sent", "job", r.Job, "err", err)
	}
}

// jobURL is the job's page on the node's public URL.
func (n *Node) jobURL(job string) string {
	base := n.httpURL
	if n.cfg.GitHub != nil && n.cfg.GitHub.PublicURL != "" {
		base = strings.TrimRight(n.cfg.GitHub.PublicURL, "/")
	}
	return base + "/jobs/" + job
}

// desiredStatus is the commit status a job's ledger state implies.
func desiredStatus(j *raftfsm.Job) (state, desc string) {
	counts := fmt.Sprintf("%d passed, %d failed, %d open of %d tasks", j.Passed, j.Failed, j.Open, len(j.Tasks))
	switch {
	case j.Held:
		return "pending", "waiting for approval: ourci-node approve " + j.ID
	case j.Status == raftfsm.StatusPending:
		return "pending", "running: " + counts
	case j.Status == raftfsm.StatusFailed:
		return "failure", "failed (" + j.Reason + "): " + counts
	case j.Status == raftfsm.StatusPassed:
		return "success", fmt.Sprintf("all %d tasks passed in %s", len(j.Tasks), j.ClosedAt.Sub(j.CreatedAt).Round(time.Second))
	case j.Reason == raftfsm.ReasonSuperseded:
		return "error", "superseded by a newer push (job " + j.Successor + ")"
	case j.Reason == raftfsm.ReasonTimedOut:
		return "error", "timed out: " + counts
	}
	return "error", "cancelled: " + counts
}

// notifyKind says which notification a job owes: "failed" when its status
// turned failed, "recovered" when it passed after the previous job of the
// same pull request (or branch) had failed; "" when none or already sent.
func notifyKind(s *raftfsm.State, j *raftfsm.Job) string {
	kind := ""
	switch {
	case j.Status == raftfsm.StatusFailed:
		kind = "failed"
	case j.Status == raftfsm.StatusPassed:
		if prev := previousJob(s, j); prev != nil && prev.Status == raftfsm.StatusFailed {
			kind = "recovered"
		}
	}
	if kind == j.GitHub.Notified {
		return ""
	}
	return kind
}

// previousJob is the last settled job before j of the same repository and
// pull request (or branch, for pushes); superseded and cancelled ones skipped.
func previousJob(s *raftfsm.State, j *raftfsm.Job) *raftfsm.Job {
	for i := len(s.JobOrder) - 1; i >= 0; i-- {
		p := s.Jobs[s.JobOrder[i]]
		if p.Index >= j.Index || p.GitHub == nil || p.GitHub.Owner != j.GitHub.Owner || p.GitHub.Name != j.GitHub.Name {
			continue
		}
		same := j.Source.PR > 0 && p.Source.PR == j.Source.PR || j.Source.PR == 0 && p.Source.PR == 0 && p.Source.Branch == j.Source.Branch
		if same && (p.Status == raftfsm.StatusFailed || p.Status == raftfsm.StatusPassed) {
			return p
		}
	}
	return nil
}

func (n *Node) notify(ctx context.Context, statuses *github.Statuses, j raftfsm.Job, kind string) error {
	g := j.GitHub
	to := github.Author{Name: g.Author.Name, Email: g.Author.Email, Login: g.Author.Login}
	if to.Email == "" && statuses != nil {
		if email, err := statuses.AuthorEmail(ctx, g.Owner, g.Name, j.Source.SHA); err == nil {
			to.Email = email
		} else {
			n.log.Warn("github: looking up the author's e-mail", "job", j.ID, "err", err)
		}
	}
	return n.cfg.GitHub.Notify.Send(ctx, github.Notification{
		SchemaVersion: 1, Kind: kind, Job: j.ID, Status: string(j.Status), Reason: j.Reason, URL: n.jobURL(j.ID),
		Repo: g.Owner + "/" + g.Name, SHA: j.Source.SHA, Branch: j.Source.Branch, PR: j.Source.PR, To: to,
	})
}
