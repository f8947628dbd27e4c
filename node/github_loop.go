package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

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
