package node

import (
	"cmp"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// GitHubConfig is what the webhook and the commit statuses need.
type GitHubConfig struct {
	WebhookSecret []byte // verifies X-Hub-Signature-256; nil: the webhook is off
	Token         string // API token for commit statuses; "": none are sent
	// AppID and AppKey authenticate as a GitHub App (installation tokens
	// per repository): jobs then report check runs instead of statuses.
	AppID        int64
	AppKey       *rsa.PrivateKey
	APIURL       string   // "" means https://api.github.com/
	Topic        string   // the root task's topic (default ourci/build/docker)
	Image        string   // the root task's image
	Command      []string // the root task's ARGS (default ci/all.sh)
	PushBranches []string // pushes to these branches open jobs ("*": any)
	TrustForks   bool     // run pull requests from forks without approval
	NoSupersede  bool     // keep older jobs of a pull request running
	PublicURL    string   // base of the job links in statuses and notifications
	// CloneURL, when set, is the repository URL jobs check out, with {owner}
	// and {repo} filled in (an SSH URL, a local mirror); "" takes the
	// payload's clone_url.
	CloneURL string
	Notify   *github.Notifier
}

// The webhook's HTTP edge (signature, budget, relay) is node/httpapi's
// (webhook.go); the node is its Webhooks: what a verified delivery does.
type webhooks struct{ n *Node }

func (h webhooks) Secret() []byte {
	if gh := h.n.cfg.GitHub; gh != nil {
		return gh.WebhookSecret
	}
	return nil
}

func (h webhooks) Refused(r *http.Request, err error) { h.n.webhookRefused(r, err) }

func (h webhooks) Take(ctx context.Context, event, delivery string, body []byte) (int, any, error) {
	return h.n.takeWebhook(ctx, event, delivery, body)
}

// webhookRefused logs a refused webhook, at most once per client address
// per interval (anyone can send them).
func (n *Node) webhookRefused(r *http.Request, err error) {
	host, _, e := net.SplitHostPort(r.RemoteAddr)
	if e != nil {
		host = r.RemoteAddr
	}
	if ok, suppressed, _ := n.refused.log.Allow("webhook " + host); ok {
		args := []any{"err", err, "client", host, "delivery", r.Header.Get(github.HeaderDelivery)}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		n.log.Warn("github: refused a webhook", args...)
	}
}

// takeWebhook acts on a verified delivery, on the leader: the answer's
// status and body.
func (n *Node) takeWebhook(ctx context.Context, event, delivery string, body []byte) (int, any, error) {
	ev, err := github.Parse(event, delivery, body)
	if err != nil {
		return 0, nil, httpapi.BadDelivery(err)
	}
	if ev.Kind == "ping" {
		return http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "pong": true}, nil
	}
	ok, why := github.Trigger(ev, n.cfg.GitHub.PushBranches)
	if ok && (ev.Kind == github.KindCheckRun || ev.Kind == github.KindCheckSuite) {
		// Re-runs are for this App's check runs; with commit statuses
		// GitHub offers no Re-run button for OurCI.
		switch gh := n.cfg.GitHub; {
		case gh.AppID == 0:
			ok, why = false, ev.Kind+" is ignored: this mesh reports commit statuses, not check runs (no --github-app-id)"
		case ev.App != gh.AppID:
			ok, why = false, fmt.Sprintf("%s of another GitHub App (%d) is ignored", ev.Kind, ev.App)
		}
	}
	if !ok {
		return http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "ignored": why}, nil
	}
	// One delivery at a time decides and commits: what the ledger holds
	// for the pull request (its newest job, the deliveries seen) is then
	// exact when the next is judged.
	n.hookMu.Lock()
	defer n.hookMu.Unlock()
	d, err := n.webhookCommands(ev)
	if err != nil {
		return 0, nil, httpapi.BadDelivery(err)
	}
	switch {
	case d.dup != nil:
		n.log.Info("github: this event was delivered before (same event, repository, pull request or branch, head commit and action); no new job",
			"delivery", ev.Delivery, "job", d.dup.Job, "event", d.event)
		return http.StatusOK, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: d.dup.Job, Task: d.dup.ID}, nil
	case d.stale != "":
		n.log.Warn("github: ignored a delivery for a commit older than its pull request's current head (a replay?)", "delivery", ev.Delivery, "why", d.stale)
		return http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "ignored": d.stale}, nil
	}
	cmds := d.cmds
	c := cmds[0]
	if len(cmds) > 1 {
		c = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
	}
	res, err := n.submit(ctx, c)
	if err == nil && c.Type == raftfsm.CmdBatch {
		err = res.Batch[len(res.Batch)-1].Err
		res = res.Batch[len(res.Batch)-1]
	}
	if err != nil {
		return 0, nil, err
	}
	if res.Job != d.job {
		n.log.Info("github: delivery seen before; no new job", "delivery", ev.Delivery, "job", res.Job)
		return http.StatusOK, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: res.Job, Task: res.Task}, nil
	}
	n.log.Info("github: opened a job", "job", res.Job, "repo", ev.Repo.FullName, "pr", ev.PR, "sha", ev.HeadSHA)
	return http.StatusCreated, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: res.Job, Task: res.Task}, nil
}

// hookDecision is what the leader makes of a triggering event.
type hookDecision struct {
	cmds  []raftfsm.Command // the entry to propose: superseded jobs' closes, then the spawn
	job   string            // the job the spawn opens
	event string            // the event's content key (raftfsm.GitHub.Event)
	dup   *raftfsm.Task     // the root of the job this same event opened before
	stale string            // why the event is older than its pull request's current head
}

// eventKey is what deduplicates a delivery by its content (whatever its
// X-GitHub-Delivery, which the signature does not cover): the event, the
// pull request or the ref, the head commit and the action; the repository
// is the job's Owner and Name.
func eventKey(ev github.Event) string {
	if ev.Key != "" {
		return ev.Key // check_run, check_suite, merge_group: github.Parse keys them
	}
	if ev.Kind == github.KindPullRequest {
		return fmt.Sprintf("%s %s #%d %s", ev.Kind, ev.Action, ev.PR, ev.HeadSHA)
	}
	return fmt.Sprintf("%s %s %s", ev.Kind, ev.Ref, ev.HeadSHA)
}

// webhookCommands decides what a triggering event does, from the local
// replica (the leader's): nothing if the same event opened a job before
// (dup: same content, and not stamped later by GitHub than that job's,
// which a force-push back to a head built before is) or it is for a commit
// older than its pull request's current head (stale); else the entry that opens its job, closing the pull request's
// open jobs as superseded. A repeated delivery ID maps to the same
// idempotency key, so the ledger opens nothing for it either.
//
// "Older" is decided against the pull request's newest job (the current
// head): by the payloads' pull_request.updated_at, which GitHub moves on
// every push and a replayed body cannot, when both have one and they
// differ; else by the commits: a head that an earlier job of the pull
// request had, and the newest job has not, is older. The leader stamps the
// event's key and time in the job's GitHub record; Apply only records them.
func (n *Node) webhookCommands(ev github.Event) (hookDecision, error) {
	gh := n.cfg.GitHub
	if ev.Delivery == "" {
		return hookDecision{}, errors.New("github: delivery without X-GitHub-Delivery")
	}
	now := n.cfg.Clock.Now().UTC()
	d := hookDecision{job: leader.NewID(), event: eventKey(ev)} // named now: the supersede closes below refer to it
	if ev.Kind == github.KindCheckRun || ev.Kind == github.KindCheckSuite {
		n.fsm.Read(func(s *raftfsm.State, _ uint64) { ev = rerunOf(s, ev) })
	}
	held := (ev.Fork || ev.ForkUnknown) && !gh.TrustForks
	nj := &raftfsm.NewJob{
		Source:  raftfsm.Source{Repo: gh.cloneURL(ev), SHA: ev.HeadSHA, Branch: ev.HeadRef, PR: ev.PR},
		Trigger: "github " + ev.Kind + " by " + cmp.Or(ev.Author.Login, ev.Author.Email, "unknown"),
		Held:    held,
		GitHub: &raftfsm.GitHub{
			Owner: ev.Repo.Owner, Name: ev.Repo.Name, Delivery: ev.Delivery, Fork: ev.Fork,
			Author: raftfsm.Author{Name: ev.Author.Name, Email: ev.Author.Email, Login: ev.Author.Login},
			Event:  d.event, Updated: ev.Updated,
		},
	}
	if !held {
		nj.Deadline = now.Add(n.cfg.JobTimeout)
	}
	sp := &raftfsm.Spawn{
		NewJob: nj, Job: d.job, Topic: gh.Topic, Image: gh.Image, Args: gh.Command,
		Key: "github:" + ev.Delivery,
	}
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		if _, seen := s.Keys[sp.Key]; seen {
			return // a replayed delivery ID: the ledger answers with its job and supersedes nothing
		}
		var current *raftfsm.Job // the pull request's newest job
		atHead := false          // the event is at or past the current head
		for i := len(s.JobOrder) - 1; i >= 0; i-- {
			j := s.Jobs[s.JobOrder[i]]
			if j == nil || j.GitHub == nil || !strings.EqualFold(j.GitHub.Owner, ev.Repo.Owner) || !strings.EqualFold(j.GitHub.Name, ev.Repo.Name) {
				continue
			}
			// The same content is a repeat, unless GitHub stamped it later
			// (a force-push back to a head built before).
			if j.GitHub.Event == d.event && !newerByTime(ev.Updated, j.GitHub.Updated) && s.Tasks[j.Root] != nil {
				d.dup = s.Tasks[j.Root]
				return
			}
			if ev.PR == 0 || j.Source.PR != ev.PR {
				continue
			}
			if current == nil {
				current = j
				switch {
				case olderByTime(ev.Updated, j.GitHub.Updated):
					d.stale = fmt.Sprintf("pull request #%d: this delivery's head %s was updated %s, before the current head %s (job %s, updated %s)",
						ev.PR, short(ev.HeadSHA), ev.Updated.Format(time.RFC3339), short(j.Source.SHA), j.ID, j.GitHub.Updated.Format(time.RFC3339))
				case newerByTime(ev.Updated, j.GitHub.Updated), ev.HeadSHA == j.Source.SHA:
					atHead = true
				}
				continue
			}
			if !atHead && d.stale == "" && j.Source.SHA == ev.HeadSHA {
				d.stale = fmt.Sprintf("pull request #%d: head %s is older than its current head %s (job %s): job %s built it before",
					ev.PR, short(ev.HeadSHA), short(current.Source.SHA), current.ID, j.ID)
			}
		}
		if d.dup != nil || d.stale != "" || ev.PR == 0 || gh.NoSupersede {
			return
		}
		for _, j := range s.OpenJobs() {
			if j.GitHub != nil && strings.EqualFold(j.GitHub.Owner, ev.Repo.Owner) && strings.EqualFold(j.GitHub.Name, ev.Repo.Name) && j.Source.PR == ev.PR {
				d.cmds = append(d.cmds, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{
					Job: j.ID, Reason: raftfsm.ReasonSuperseded, By: d.job}})
			}
		}
	})
	d.cmds = append(d.cmds, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp})
	return d, nil
}

// rerunOf completes a re-requested check's event from the newest job the
// ledger holds for the same repository and commit: its pull request,
// branch and whether its head is a fork's (a check suite of a fork's
// branch lists no pull request). With no such job and no pull request in
// the payload, whose commit it is stays unknown, and the job waits for
// approval as a fork's would.
func rerunOf(s *raftfsm.State, ev github.Event) github.Event {
	for i := len(s.JobOrder) - 1; i >= 0; i-- {
		j := s.Jobs[s.JobOrder[i]]
		if j == nil || j.GitHub == nil || j.Source.SHA != ev.HeadSHA ||
			!strings.EqualFold(j.GitHub.Owner, ev.Repo.Owner) || !strings.EqualFold(j.GitHub.Name, ev.Repo.Name) {
			continue
		}
		if ev.PR == 0 {
			ev.PR, ev.HeadRef = j.Source.PR, j.Source.Branch
		}
		if ev.ForkUnknown || j.GitHub.Fork {
			ev.Fork, ev.ForkUnknown = j.GitHub.Fork || ev.Fork, false
		}
		return ev
	}
	return ev
}

// olderByTime and newerByTime compare two pull_request.updated_at stamps,
// when both are known.
func olderByTime(ev, current time.Time) bool {
	return !ev.IsZero() && !current.IsZero() && ev.Before(current)
}

func newerByTime(ev, current time.Time) bool {
	return !ev.IsZero() && !current.IsZero() && ev.After(current)
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

func (g *GitHubConfig) cloneURL(ev github.Event) string {
	if g.CloneURL == "" {
		return ev.Repo.CloneURL
	}
	return strings.NewReplacer("{owner}", ev.Repo.Owner, "{repo}", ev.Repo.Name).Replace(g.CloneURL)
}
