package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/raftfsm"
)

// CommitStatuses sets a commit's status on GitHub (*github.Statuses).
type CommitStatuses interface {
	Set(ctx context.Context, owner, repo, sha, state, targetURL, description string) error
}

// CheckRuns finds, creates and updates check runs on GitHub
// (*github.Checks).
type CheckRuns interface {
	Find(ctx context.Context, owner, repo, sha, externalID string) (int64, error)
	Create(ctx context.Context, owner, repo, sha, externalID, detailsURL string, out github.Output, started time.Time) (int64, error)
	Update(ctx context.Context, owner, repo string, id int64, status, conclusion string, out github.Output, completed time.Time) error
}

// AuthorEmails looks up a commit author's e-mail (*github.Statuses).
type AuthorEmails interface {
	AuthorEmail(ctx context.Context, owner, repo, sha string) (string, error)
}

// Notifier sends a failure or recovery notification (*github.Notifier).
type Notifier interface {
	Send(ctx context.Context, n github.Notification) error
}

// GitHub sends GitHub what the ledger says it has not acknowledged yet:
// the commit status (or, with App authentication, the check run) each
// job's state implies, and the failure and recovery notifications. It
// records only what was acknowledged (CmdReported, through Writer). After
// a leader change the new leader sends what is missing; a send that fails
// is retried (one that failed for good, github.ErrPermanent, not for the
// same state), and never holds up a job.
type GitHub struct {
	Ledger Ledger
	Writer Writer
	// Statuses sends commit statuses (token authentication); nil: none.
	Statuses CommitStatuses
	// Checks sends check runs (App authentication); nil: none. While Gate
	// refuses raftfsm.SchemaCheckRuns (a voter's binary does not know a
	// check run's record) AppStatuses sends commit statuses instead.
	Checks      CheckRuns
	AppStatuses CommitStatuses
	// Gate refuses a command that needs ledger schema need while some
	// voter does not know it; nil: every schema is known.
	Gate func(need int) error
	// Authors looks up the e-mail of an author the job does not name;
	// nil: none is looked up.
	Authors AuthorEmails
	// Notify sends the notifications; nil: none are sent.
	Notify Notifier
	// JobURL is a job's page on the node's public URL; its tasks' pages
	// are beside it (BASE/jobs/JOB, BASE/tasks/TASK).
	JobURL func(job string) string
	// LogTail is the last max bytes of the log of a task's current
	// attempt (from the node that ran it).
	LogTail func(ctx context.Context, t *raftfsm.Task, max int) ([]byte, error)
	// Go runs a send in the background (the node's tracked goroutines).
	Go func(func())
	// Every is how often it looks without a ledger change (0: 30 s): a
	// failed send is retried then.
	Every time.Duration
	Log   *slog.Logger
}

func (GitHub) Name() string { return "github" }

// githubWindow is how many recent jobs the leader checks for commit
// statuses and notifications still owed (besides every open job).
const githubWindow = 500

// githubWork is what one job is owed: a commit status (state, desc), a
// check run's state (check) and a notification; "" where nothing is.
type githubWork struct {
	job         raftfsm.Job
	state, desc string
	check       string
	notify      string
}

// planGitHub is what the jobs of the ledger are owed, open jobs first,
// then the githubWindow most recent; statuses, checks and notify say
// which of them are sent at all.
func planGitHub(s *raftfsm.State, statuses, checks, notify bool) []githubWork {
	var todo []githubWork
	seen := map[string]bool{}
	for _, j := range append(s.OpenJobs(), s.RecentJobs(githubWindow)...) {
		if j.GitHub == nil || seen[j.ID] {
			continue
		}
		seen[j.ID] = true
		w := githubWork{job: *j.Clone()}
		w.state, w.desc = desiredStatus(j)
		if j.GitHub.Reported == "" && w.state != "pending" {
			// A job's first status is pending, even when it failed (or
			// passed) before GitHub heard of it; the real state follows
			// in the next round.
			w.state, w.desc = "pending", "running: "+w.desc
		}
		if !statuses || w.state == j.GitHub.Reported {
			w.state = ""
		}
		if checks {
			// A job's check run is created in_progress; the state it
			// should have follows in the next round.
			w.check = desiredCheck(j)
			if j.GitHub.CheckRun == 0 {
				w.check = github.CheckInProgress
			} else if w.check == j.GitHub.Checked {
				w.check = ""
			}
		}
		if notify {
			w.notify = notifyKind(s, j)
		}
		if w.state != "" || w.check != "" || w.notify != "" {
			todo = append(todo, w)
		}
	}
	return todo
}

// Run sends what is owed until ctx ends: again after the ledger changed,
// or Every.
func (g GitHub) Run(ctx context.Context) {
	if g.Every <= 0 {
		g.Every = 30 * time.Second
	}
	var mu sync.Mutex
	busy := map[string]bool{}    // "status/JOB", "check/JOB" or "notify/JOB" in flight
	given := map[string]string{} // "status/JOB" or "check/JOB" → desired state that failed for good
	held := false                // check runs held back for an old voter (logged once)
	for {
		_, ch := g.Ledger.Watch()
		// A job's check run is recorded in the ledger with schema 2: while
		// a voter's binary does not know it, the App posts commit statuses.
		passChecks, passStatuses := g.Checks, g.Statuses
		if g.Checks != nil {
			if err := g.gate(raftfsm.SchemaCheckRuns); err != nil {
				passChecks, passStatuses = nil, g.AppStatuses
				if !held {
					g.Log.Warn("github: commit statuses instead of check runs until every voter is upgraded", "err", err)
				}
			}
			held = passChecks == nil
		}
		var todo []githubWork
		g.Ledger.Read(func(s *raftfsm.State, _ uint64) {
			todo = planGitHub(s, passStatuses != nil, passChecks != nil, g.Notify != nil)
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
				g.Go(func() {
					defer func() { mu.Lock(); delete(busy, "status/"+id); mu.Unlock() }()
					gh := w.job.GitHub
					err := passStatuses.Set(ctx, gh.Owner, gh.Name, w.job.Source.SHA, w.state, g.JobURL(id), w.desc)
					if err != nil {
						g.Log.Warn("github: commit status not delivered", "job", id, "state", w.state, "err", err)
						if errors.Is(err, github.ErrPermanent) {
							mu.Lock()
							given["status/"+id] = w.state
							mu.Unlock()
						}
						return
					}
					g.record(ctx, &raftfsm.Reported{Job: id, Status: w.state})
				})
			}
			if sendCheck {
				g.Go(func() {
					defer func() { mu.Lock(); delete(busy, "check/"+id); mu.Unlock() }()
					r, err := g.sendCheck(ctx, passChecks, w.job, w.check)
					if err != nil {
						g.Log.Warn("github: check run not delivered", "job", id, "check", w.check, "err", err)
						if errors.Is(err, github.ErrPermanent) {
							mu.Lock()
							given["check/"+id] = w.check
							mu.Unlock()
						}
						return
					}
					g.record(ctx, r)
				})
			}
			if sendNote {
				g.Go(func() {
					defer func() { mu.Lock(); delete(busy, "notify/"+id); mu.Unlock() }()
					if err := g.notify(ctx, w.job, w.notify); err != nil {
						g.Log.Warn("github: notification not delivered; will retry", "job", id, "kind", w.notify, "err", err)
						return
					}
					g.record(ctx, &raftfsm.Reported{Job: id, Notified: w.notify})
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(g.Every): // retry what failed
		}
	}
}

func (g GitHub) gate(need int) error {
	if g.Gate == nil {
		return nil
	}
	return g.Gate(need)
}

// record writes what GitHub acknowledged; one that is not known to be
// written is sent again in a later round.
func (g GitHub) record(ctx context.Context, r *raftfsm.Reported) {
	if _, err := g.Writer.Submit(ctx, raftfsm.Command{Type: raftfsm.CmdReported, Reported: r}); err != nil && ctx.Err() == nil {
		g.Log.Warn("github: recording what was sent", "job", r.Job, "err", err)
	}
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

// notify sends the job's notification of kind, to its author (whose
// e-mail is looked up on GitHub when the job does not name it).
func (g GitHub) notify(ctx context.Context, j raftfsm.Job, kind string) error {
	gh := j.GitHub
	to := github.Author{Name: gh.Author.Name, Email: gh.Author.Email, Login: gh.Author.Login}
	if to.Email == "" && g.Authors != nil {
		if email, err := g.Authors.AuthorEmail(ctx, gh.Owner, gh.Name, j.Source.SHA); err == nil {
			to.Email = email
		} else {
			g.Log.Warn("github: looking up the author's e-mail", "job", j.ID, "err", err)
		}
	}
	return g.Notify.Send(ctx, github.Notification{
		SchemaVersion: 1, Kind: kind, Job: j.ID, Status: string(j.Status), Reason: j.Reason, URL: g.JobURL(j.ID),
		Repo: gh.Owner + "/" + gh.Name, SHA: j.Source.SHA, Branch: j.Source.Branch, PR: j.Source.PR, To: to,
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
func (g GitHub) sendCheck(ctx context.Context, checks CheckRuns, j raftfsm.Job, want string) (*raftfsm.Reported, error) {
	gh := j.GitHub
	id := gh.CheckRun
	if id == 0 {
		found, err := checks.Find(ctx, gh.Owner, gh.Name, j.Source.SHA, j.ID)
		if err != nil {
			return nil, err
		}
		if found != 0 {
			g.Log.Info("github: adopted the job's check run", "job", j.ID, "check_run", found)
			return &raftfsm.Reported{Job: j.ID, CheckRun: found, Check: github.CheckInProgress}, nil
		}
		rep, _ := g.checkReport(ctx, j, false)
		id, err = checks.Create(ctx, gh.Owner, gh.Name, j.Source.SHA, j.ID, g.JobURL(j.ID),
			github.Output{Title: rep.Headline, Summary: rep.Markdown()}, j.CreatedAt)
		if err != nil {
			return nil, err
		}
		return &raftfsm.Reported{Job: j.ID, CheckRun: id, Check: github.CheckInProgress}, nil
	}
	status, conclusion, _ := strings.Cut(want, "/")
	rep, anns := g.checkReport(ctx, j, status == github.CheckCompleted)
	out := github.Output{Title: rep.Headline, Summary: rep.Markdown(), Annotations: anns}
	if err := checks.Update(ctx, gh.Owner, gh.Name, id, status, conclusion, out, j.ClosedAt); err != nil {
		return nil, err
	}
	return &raftfsm.Reported{Job: j.ID, Check: want}, nil
}

// checkReport is the job's report as the ledger holds it now; with logs,
// also its failed tasks' last lines and the annotations their logs yield.
func (g GitHub) checkReport(ctx context.Context, j raftfsm.Job, logs bool) (github.Report, []github.Annotation) {
	var tasks []*raftfsm.Task
	g.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		if cur := s.Jobs[j.ID]; cur != nil {
			j = *cur.Clone()
		}
		for _, t := range s.JobTasks(j.ID) {
			tasks = append(tasks, t.Clone())
		}
	})
	base := strings.TrimSuffix(g.JobURL(""), "/jobs/")
	rep := buildReport(j, tasks, g.JobURL(j.ID), base)
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
		tail, err := g.LogTail(ctx, t, checkLogTail)
		if err != nil {
			g.Log.Warn("github: reading a failed task's log for its check run", "job", j.ID, "task", t.ID, "err", err)
			f.Lines = []string{"(log not available: " + err.Error() + ")"}
		} else {
			f.Lines = github.LastLines(tail, checkLastLines)
			anns = append(anns, github.LogAnnotations(tail, taskName(t), checkAnnotations-len(anns))...)
		}
		rep.Failed = append(rep.Failed, f)
	}
	return rep, anns
}

// buildReport is the job's report without its logs: the headline and the
// task tree (parents before children, each task once; those not reached
// from the root after it), with links under base (BASE/tasks/TASK).
func buildReport(j raftfsm.Job, tasks []*raftfsm.Task, jobURL, base string) github.Report {
	_, desc := desiredStatus(&j)
	rep := github.Report{Job: j.ID, JobURL: jobURL, Headline: desc}
	byID := map[string]*raftfsm.Task{}
	for _, t := range tasks {
		byID[t.ID] = t
	}
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
	return rep
}

// taskName is how a report names a task: its ARGS, or its topic.
func taskName(t *raftfsm.Task) string {
	if len(t.Args) == 0 {
		return t.Topic
	}
	return strings.Join(t.Args, " ")
}
