package node

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/raftfsm"
)

// GitHubConfig is what the webhook and the commit statuses need.
type GitHubConfig struct {
	WebhookSecret []byte   // verifies X-Hub-Signature-256; nil: the webhook is off
	Token         string   // API token for commit statuses; "": none are sent
	APIURL        string   // "" means https://api.github.com/
	Topic         string   // the root task's topic (default ourci/build/docker)
	Image         string   // the root task's image
	Command       []string // the root task's ARGS (default ci/all.sh)
	PushBranches  []string // pushes to these branches open jobs ("*": any)
	TrustForks    bool     // run pull requests from forks without approval
	NoSupersede   bool     // keep older jobs of a pull request running
	PublicURL     string   // base of the job links in statuses and notifications
	// CloneURL, when set, is the repository URL jobs check out, with {owner}
	// and {repo} filled in (an SSH URL, a local mirror); "" takes the
	// payload's clone_url.
	CloneURL string
	Notify   *github.Notifier
}

// handleWebhook takes a GitHub delivery on any node. The signature is
// checked before the body is parsed; then the leader opens the job (a
// follower relays the request unread). The answer never waits on a build.
func (n *Node) handleWebhook(w http.ResponseWriter, r *http.Request) {
	gh := n.cfg.GitHub
	if gh == nil || gh.WebhookSecret == nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, errors.New("this mesh takes no GitHub webhooks (--github-secret-file)"))
		return
	}
	if r.ContentLength > github.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeBadRequest, fmt.Errorf("webhook body over %d bytes", github.MaxBody))
		return
	}
	if n.currentDispatcher() == nil {
		n.leaderOnly(func(w http.ResponseWriter, r *http.Request, _ Principal) { n.webhookLocal(w, r) })(w, r, Principal{})
		return
	}
	n.webhookLocal(w, r)
}

func (n *Node) webhookLocal(w http.ResponseWriter, r *http.Request) {
	gh := n.cfg.GitHub
	body, err := github.ReadBody(r)
	if err != nil {
		writeError(w, github.HTTPStatus(err), api.CodeBadRequest, err)
		return
	}
	if err := github.Verify(gh.WebhookSecret, body, r.Header.Get("X-Hub-Signature-256")); err != nil {
		n.log.Warn("github: refused a webhook", "err", err, "delivery", r.Header.Get("X-GitHub-Delivery"))
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, err)
		return
	}
	ev, err := github.Parse(r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery"), body)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	if ev.Kind == "ping" {
		writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "pong": true})
		return
	}
	ok, why := github.Trigger(ev, gh.PushBranches)
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "ignored": why})
		return
	}
	cmds, job, err := n.webhookCommands(ev)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	}
	c := cmds[0]
	if len(cmds) > 1 {
		c = raftfsm.Command{Type: raftfsm.CmdBatch, Batch: cmds}
	}
	res, err := n.submit(r.Context(), c)
	if err == nil && c.Type == raftfsm.CmdBatch {
		err = res.Batch[len(res.Batch)-1].Err
		res = res.Batch[len(res.Batch)-1]
	}
	if err != nil {
		writeLedgerError(w, err)
		return
	}
	if res.Job != job {
		n.log.Info("github: delivery seen before; no new job", "delivery", ev.Delivery, "job", res.Job)
	} else {
		n.log.Info("github: opened a job", "job", res.Job, "repo", ev.Repo.FullName, "pr", ev.PR, "sha", ev.HeadSHA)
	}
	writeJSON(w, http.StatusCreated, api.SpawnResponse{SchemaVersion: api.SchemaVersion, Job: res.Job, Task: res.Task})
}

// webhookCommands builds the entry a triggering event proposes: the
// superseded jobs' closes, then the new job with its root task. A repeated
// delivery maps to the same idempotency key and opens nothing new.
func (n *Node) webhookCommands(ev github.Event) ([]raftfsm.Command, string, error) {
	gh := n.cfg.GitHub
	now := n.cfg.Clock.Now().UTC()
	job, task := newID(), newID()
	held := ev.Fork && !gh.TrustForks
	nj := &raftfsm.NewJob{
		Source:  raftfsm.Source{Repo: gh.cloneURL(ev), SHA: ev.HeadSHA, Branch: ev.HeadRef, PR: ev.PR},
		Trigger: "github " + ev.Kind + " by " + cmp.Or(ev.Author.Login, ev.Author.Email, "unknown"),
		Held:    held,
		GitHub: &raftfsm.GitHub{
			Owner: ev.Repo.Owner, Name: ev.Repo.Name, Delivery: ev.Delivery, Fork: ev.Fork,
			Author: raftfsm.Author{Name: ev.Author.Name, Email: ev.Author.Email, Login: ev.Author.Login},
		},
	}
	if !held {
		nj.Deadline = now.Add(n.cfg.JobTimeout)
	}
	sp := &raftfsm.Spawn{
		NewJob: nj, Job: job, Task: task, Topic: gh.Topic, Image: gh.Image, Args: gh.Command,
		Key: "github:" + ev.Delivery, At: now,
	}
	if ev.Delivery == "" {
		return nil, "", errors.New("github: delivery without X-GitHub-Delivery")
	}
	var cmds []raftfsm.Command
	if ev.PR > 0 && !gh.NoSupersede {
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			if _, seen := s.Keys[sp.Key]; seen {
				return // a replay supersedes nothing
			}
			for _, j := range s.OpenJobs() {
				if j.GitHub != nil && j.GitHub.Owner == ev.Repo.Owner && j.GitHub.Name == ev.Repo.Name && j.Source.PR == ev.PR {
					cmds = append(cmds, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{
						Job: j.ID, Reason: raftfsm.ReasonSuperseded, By: job, At: now}})
				}
			}
		})
	}
	return append(cmds, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp}), job, nil
}

// handleApprove lets a held job (a pull request from a fork) run.
func (n *Node) handleApprove(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	now := n.cfg.Clock.Now().UTC()
	c := raftfsm.Command{Type: raftfsm.CmdApprove, Approve: &raftfsm.Approve{
		Job: id, By: r.URL.Query().Get("by"), Deadline: now.Add(n.cfg.JobTimeout), At: now}}
	if _, err := n.submit(r.Context(), c); err != nil {
		writeLedgerError(w, err)
		return
	}
	d, _ := n.jobDetail(id)
	writeJSON(w, http.StatusOK, d)
}

func (g *GitHubConfig) cloneURL(ev github.Event) string {
	if g.CloneURL == "" {
		return ev.Repo.CloneURL
	}
	return strings.NewReplacer("{owner}", ev.Repo.Owner, "{repo}", ev.Repo.Name).Replace(g.CloneURL)
}
