package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// githubDuty is the leader's GitHub duty (node/leader.GitHub) with the
// clients the configuration asks for, writing through d; nil without a
// GitHub configuration.
func (n *Node) githubDuty(d leader.Writer) leader.Duty {
	gh := n.cfg.GitHub
	if gh == nil {
		return nil
	}
	g := leader.GitHub{Ledger: n.fsm, Writer: d, Gate: n.schemaReady, JobURL: n.jobURL, LogTail: n.logTail, Go: n.goFunc, Log: n.log}
	if gh.AppID != 0 {
		app, err := github.NewApp(gh.AppID, gh.AppKey, gh.APIURL, n.extHTTP)
		if err != nil {
			n.log.Error("github: check runs off", "err", err)
		} else {
			app.Now = n.cfg.Clock.Now
			appStatuses := github.NewAppStatuses(app)
			g.Checks, g.AppStatuses, g.Authors = github.NewChecks(app), appStatuses, appStatuses
		}
	}
	if gh.Token != "" && g.Checks == nil {
		if statuses, err := github.NewStatuses(gh.Token, gh.APIURL, n.extHTTP); err != nil {
			n.log.Error("github: commit statuses off", "err", err)
		} else {
			g.Statuses, g.Authors = statuses, statuses
		}
	}
	if gh.Notify != nil {
		g.Notify = gh.Notify
	}
	return g
}

// jobURL is the job's page on the node's public URL.
func (n *Node) jobURL(job string) string {
	base := n.httpURL
	if n.cfg.GitHub != nil && n.cfg.GitHub.PublicURL != "" {
		base = strings.TrimRight(n.cfg.GitHub.PublicURL, "/")
	}
	return base + "/jobs/" + job
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
	b, err := n.peers.LogTail(ctx, base, t.ID, max1(t.Attempt), max)
	if err != nil {
		return nil, fmt.Errorf("node %s that ran it: %w", t.Node, err)
	}
	return b, nil
}

func max1(a int) int { return max(a, 1) }
