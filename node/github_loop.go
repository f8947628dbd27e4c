package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/leader"
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
func (n *Node) githubLoop(ctx context.Context, d leader.Writer) {
	gh := n.cfg.GitHub
	if gh == nil {
		return
	}
	var statuses *github.Statuses // commit statuses; nil with App authentication
	var lookup *github.Statuses   // author e-mail look-ups
	var checks *github.Checks     // check runs (App authentication)
	var appStatuses *github.Statuses
	if gh.AppID != 0 {
		app, err := github.NewApp(gh.AppID, gh.AppKey, gh.APIURL, n.extHTTP)
		if err != nil {
			n.log.Error("github: check runs off", "err", err)
		} else {
			app.Now = n.cfg.Clock.Now
			checks, lookup = github.NewChecks(app), github.NewAppStatuses(app)
			appStatuses = lookup
		}
	}
	if gh.Token != "" && checks == nil {
		var err error
		if statuses, err = github.NewStatuses(gh.Token, gh.APIURL, n.extHTTP); err != nil {
			n.log.Error("github: commit statuses off", "err", err)
			statuses = nil
		}
		lookup = statuses
	}
	var mu sync.Mutex
	busy := map[string]bool{}    // "status/JOB", "check/JOB" or "notify/JOB" in flight
	given := map[string]string{} // "status/JOB" or "check/JOB" → desired state that failed for good
	held := false                // check runs held back for an old voter (logged once)
	for {
		_, ch := n.fsm.Watch()
		// A job's check run is recorded in the ledger with schema 2: while
		// a voter's binary does not know it, the App posts commit statuses.
		passChecks, passStatuses := checks, statuses
		if checks != nil {
			if err := n.schemaReady(raftfsm.SchemaCheckRuns); err != nil {
				passChecks, passStatuses = nil, appStatuses
				if !held {
					n.log.Warn("github: commit statuses instead of check runs until every voter is upgraded", "err", err)
				}
			}
			held = passChecks == nil
		}
		type work struct {
			job          raftfsm.Job
			state, desc  string
			check        string // the check run's desired state, "" if none is owed
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
				if passStatuses == nil || w.state == j.GitHub.Reported {
					w.state = ""
				}
				if passChecks != nil {
					// A job's check run is created in_progress; the state
					// it should have follows in the next round.
					w.check = desiredCheck(j)
					if j.GitHub.CheckRun == 0 {
						w.check = github.CheckInProgress
					} else if w.check == j.GitHub.Checked {
						w.check = ""
					}
				}
				if gh.Notify != nil {
					w.notify = notifyKind(s, j)
				}
				if w.state != "" || w.check != "" || w.notify != "" {
					todo = append(todo, w)
				}
			}
		})
		for _, w := range todo {
			id := w.job.ID
			mu.Lock()
			sendStatus := w.state != "" && !busy["status/"+id] && given["status/"+id] != w.state
			sendCheck := w.check != "" && !busy["check/"+id] && given["check/"+id] != w.check
			sendNote := w.notify != "" && !busy["notify/"+id]
			if sendStatus {
				busy["status/"+id] = true
			}
			if sendCheck {
				busy["check/"+id] = true
			}
			if sendNote {
				busy["notify/"+id] = true
			}
			mu.Unlock()
			if sendStatus {
				n.goFunc(func() {
					defer func() { mu.Lock(); delete(busy, "status/"+id); mu.Unlock() }()
					g := w.job.GitHub
					err := passStatuses.Set(ctx, g.Owner, g.Name, w.job.Source.SHA, w.state, n.jobURL(id), w.desc)
					if err != nil {
						n.log.Warn("github: commit status not delivered", "job", id, "state", w.state, "err", err)
						if errors.Is(err, github.ErrPermanent) {
							mu.Lock()
							given["status/"+id] = w.state
							mu.Unlock()
						}
						return
					}
					n.record(ctx, d, &raftfsm.Reported{Job: id, Status: w.state})
				})
			}
			if sendCheck {
				n.goFunc(func() {
					defer func() { mu.Lock(); delete(busy, "check/"+id); mu.Unlock() }()
					r, err := n.sendCheck(ctx, passChecks, w.job, w.check)
					if err != nil {
						n.log.Warn("github: check run not delivered", "job", id, "check", w.check, "err", err)
						if errors.Is(err, github.ErrPermanent) {
							mu.Lock()
							given["check/"+id] = w.check
							mu.Unlock()
						}
						return
					}
					n.record(ctx, d, r)
				})
			}
			if sendNote {
				n.goFunc(func() {
					defer func() { mu.Lock(); delete(busy, "notify/"+id); mu.Unlock() }()
					if err := n.notify(ctx, lookup, w.job, w.notify); err != nil {
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

func (n *Node) record(ctx context.Context, d leader.Writer, r *raftfsm.Reported) {
	if _, err := d.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdReported, Reported: r}); err != nil && ctx.Err() == nil {
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

// desiredCheck is the check run state a job's ledger state implies:
// "in_progress", or "completed/CONCLUSION". A held job (a fork's pull
// request) needs an approval: action_required, back to in_progress once
// approved. An infrastructure failure and a superseded job are neutral: no
// red mark for what the code did not do.
func desiredCheck(j *raftfsm.Job) string {
	c := github.CheckCompleted + "/"
	switch {
	case j.Held:
		return c + github.ConclusionActionRequired
	case j.State == raftfsm.JobOpen:
		return github.CheckInProgress
	case j.Status == raftfsm.StatusPassed:
		return c + github.ConclusionSuccess
	case j.Status == raftfsm.StatusFailed:
		return c + github.ConclusionFailure
	case j.Reason == raftfsm.ReasonSuperseded:
		return c + github.ConclusionNeutral
	case j.Reason == raftfsm.ReasonTimedOut:
		return c + github.ConclusionTimedOut
	case j.Reason == raftfsm.ReasonCancelled:
		return c + github.ConclusionCancelled
	}
	return c + github.ConclusionNeutral // a task's infrastructure failed
}

// Bounds of what a check run reads of failed tasks' logs.
const (
	checkLogTail     = 256 << 10 // bytes of each failed task's log read
	checkLastLines   = 20        // lines shown per failed task
	checkMaxFailed   = 10        // failed tasks whose logs are read
	checkAnnotations = 500       // annotations per check run
)

// sendCheck brings the job's check run to want and returns what to record.
// Without a check run on record it first looks on GitHub for one with the
// job's ID as its external_id (a leader that died before recording it
// created it) and creates one only if there is none: a failover makes no
// second check run.
func (n *Node) sendCheck(ctx context.Context, checks *github.Checks, j raftfsm.Job, want string) (*raftfsm.Reported, error) {
	g := j.GitHub
	id := g.CheckRun
	if id == 0 {
		found, err := checks.Find(ctx, g.Owner, g.Name, j.Source.SHA, j.ID)
		if err != nil {
			return nil, err
		}
		if found != 0 {
			n.log.Info("github: adopted the job's check run", "job", j.ID, "check_run", found)
			return &raftfsm.Reported{Job: j.ID, CheckRun: found, Check: github.CheckInProgress}, nil
		}
		rep, _ := n.checkReport(ctx, j, false)
		id, err = checks.Create(ctx, g.Owner, g.Name, j.Source.SHA, j.ID, n.jobURL(j.ID),
			github.Output{Title: rep.Headline, Summary: rep.Markdown()}, j.CreatedAt)
		if err != nil {
			return nil, err
		}
		return &raftfsm.Reported{Job: j.ID, CheckRun: id, Check: github.CheckInProgress}, nil
	}
	status, conclusion, _ := strings.Cut(want, "/")
	rep, anns := n.checkReport(ctx, j, status == github.CheckCompleted)
	out := github.Output{Title: rep.Headline, Summary: rep.Markdown(), Annotations: anns}
	if err := checks.Update(ctx, g.Owner, g.Name, id, status, conclusion, out, j.ClosedAt); err != nil {
		return nil, err
	}
	return &raftfsm.Reported{Job: j.ID, Check: want}, nil
}

// checkReport is the job's report as the ledger holds it now; with logs,
// also its failed tasks' last lines and the annotations their logs yield.
func (n *Node) checkReport(ctx context.Context, j raftfsm.Job, logs bool) (github.Report, []github.Annotation) {
	var tasks []*raftfsm.Task
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		if cur := s.Jobs[j.ID]; cur != nil {
			j = *cur.Clone()
		}
		for _, t := range s.JobTasks(j.ID) {
			tasks = append(tasks, t.Clone())
		}
	})
	_, desc := desiredStatus(&j)
	rep := github.Report{Job: j.ID, JobURL: n.jobURL(j.ID), Headline: desc}
	byID := map[string]*raftfsm.Task{}
	for _, t := range tasks {
		byID[t.ID] = t
	}
	base := strings.TrimSuffix(n.jobURL(""), "/jobs/")
	var walk func(id string, depth int)
	walk = func(id string, depth int) {
		t := byID[id]
		if t == nil {
			return
		}
		delete(byID, id) // each task once, whatever the records say
		rt := github.ReportTask{ID: t.ID, Name: taskName(t), URL: base + "/tasks/" + t.ID, Depth: depth, State: string(t.State)}
		if t.ExitCode != nil && *t.ExitCode != 0 {
			rt.State += fmt.Sprintf(" (exit %d)", *t.ExitCode)
		}
		if !t.StartedAt.IsZero() && !t.FinishedAt.IsZero() {
			rt.Duration = t.FinishedAt.Sub(t.StartedAt)
		}
		rep.Tasks = append(rep.Tasks, rt)
		for _, c := range t.Children {
			walk(c, depth+1)
		}
	}
	walk(j.Root, 0)
	for _, t := range tasks { // any not reached from the root
		if byID[t.ID] != nil {
			walk(t.ID, 0)
		}
	}
	if !logs {
		return rep, nil
	}
	var anns []github.Annotation
	for _, t := range tasks {
		if t.State != raftfsm.TaskFailed && t.State != raftfsm.TaskTimedOut {
			continue
		}
		if len(rep.Failed) == checkMaxFailed {
			break
		}
		f := github.FailedTask{ID: t.ID, Name: taskName(t), URL: base + "/tasks/" + t.ID}
		tail, err := n.logTail(ctx, t, checkLogTail)
		if err != nil {
			n.log.Warn("github: reading a failed task's log for its check run", "job", j.ID, "task", t.ID, "err", err)
			f.Lines = []string{"(log not available: " + err.Error() + ")"}
		} else {
			f.Lines = github.LastLines(tail, checkLastLines)
			anns = append(anns, github.LogAnnotations(tail, taskName(t), checkAnnotations-len(anns))...)
		}
		rep.Failed = append(rep.Failed, f)
	}
	return rep, anns
}

func taskName(t *raftfsm.Task) string {
	if len(t.Args) == 0 {
		return t.Topic
	}
	return strings.Join(t.Args, " ")
}

// logTail is the last max bytes of the task's current attempt's log, from
// the node that ran it (over the peer port, with the cluster token).
func (n *Node) logTail(ctx context.Context, t *raftfsm.Task, max int) ([]byte, error) {
	if t.Node == "" {
		return nil, nil // never ran
	}
	base, ok := n.memberURL(t.Node)
	if !ok {
		return nil, fmt.Errorf("node %s that ran it is not reachable", t.Node)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := fmt.Sprintf("%s/v1/tasks/%s/log?attempt=%d", strings.TrimRight(base, "/"), t.ID, max1(t.Attempt))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	n.peerAuth(req)
	resp, err := n.peerHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s answered %s", t.Node, resp.Status)
	}
	tail := &tailBuffer{max: max}
	if _, err := io.Copy(tail, resp.Body); err != nil {
		return nil, err
	}
	return tail.bytes(), nil
}

func max1(a int) int { return max(a, 1) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) bytes() []byte {
	if len(b.buf) > b.max {
		return b.buf[len(b.buf)-b.max:]
	}
	return b.buf
}
