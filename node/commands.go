package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/checkout"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// Limits on what a spawn may carry.
const (
	maxArgs    = 1024
	maxArgLen  = 64 << 10
	maxEnv     = 256
	maxTopic   = 200
	maxKeySize = 200
	// maxPriority bounds a task's priority either way.
	maxPriority = 1000
)

// spawnCommand turns a spawn request into a ledger command; the
// dispatcher stamps its time, IDs and quotas (leader.Limits). A task token spawns a child of its task into its job;
// the cluster token opens a new job.
func (n *Node) spawnCommand(req api.SpawnRequest, p Principal) (raftfsm.Command, error) {
	switch {
	case req.Topic == "" || len(req.Topic) > maxTopic || strings.ContainsAny(req.Topic, " \t\n="):
		return raftfsm.Command{}, fmt.Errorf("spawn: topic %q: a topic is a non-empty name without spaces or '='", req.Topic)
	case len(req.Args) > maxArgs:
		return raftfsm.Command{}, fmt.Errorf("spawn: %d args, at most %d", len(req.Args), maxArgs)
	case len(req.Env) > maxEnv:
		return raftfsm.Command{}, fmt.Errorf("spawn: %d env entries, at most %d", len(req.Env), maxEnv)
	case len(req.Key) > maxKeySize:
		return raftfsm.Command{}, fmt.Errorf("spawn: idempotency key longer than %d", maxKeySize)
	case req.Timeout < 0 || req.JobTimeout < 0:
		return raftfsm.Command{}, errors.New("spawn: negative timeout")
	case req.Priority < -maxPriority || req.Priority > maxPriority:
		return raftfsm.Command{}, fmt.Errorf("spawn: priority %d: want -%d to %d (--priority)", req.Priority, maxPriority, maxPriority)
	}
	if req.ImageFirst {
		var err error
		if req, err = n.imageFirst(req); err != nil {
			return raftfsm.Command{}, err
		}
	}
	for _, a := range req.Args {
		if len(a) > maxArgLen {
			return raftfsm.Command{}, fmt.Errorf("spawn: an arg longer than %d bytes", maxArgLen)
		}
	}
	size := len(req.Topic) + len(req.Image)
	for _, a := range req.Args {
		size += len(a)
	}
	for _, kv := range req.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return raftfsm.Command{}, fmt.Errorf("spawn: env %q: want NAME=VALUE", kv)
		}
		size += len(kv)
	}
	if max := n.cfg.MaxSpawnBytes; max > 0 && size > max {
		n.metrics.QuotaRefused("spawn_bytes") // metrics
		return raftfsm.Command{}, fmt.Errorf("%w: spawn: its topic, image, arguments and environment are %s, at most %s (--max-spawn-bytes): pass big inputs as a blob (blob_upload) and their name as an argument", errQuotaSize, api.ByteSize(int64(size)), api.ByteSize(int64(max)))
	}
	if err := topic.CheckEnv(req.Env, n.envAllowed(req.Topic)); err != nil {
		return raftfsm.Command{}, err
	}
	now := n.cfg.Clock.Now().UTC()
	o := topic.Origin{Operator: true}
	sp := &raftfsm.Spawn{
		Topic: req.Topic, Image: req.Image, Args: req.Args, Env: req.Env,
		Timeout: time.Duration(req.Timeout), Priority: req.Priority,
	}
	if !p.IsTask() {
		jt := time.Duration(req.JobTimeout)
		if jt == 0 {
			jt = n.cfg.JobTimeout
		}
		sp.NewJob = &raftfsm.NewJob{Source: req.Source, Trigger: req.Trigger, Deadline: now.Add(jt)}
		if req.Key != "" {
			sp.Key = "cluster:" + req.Key
		}
	} else {
		var job, ptopic, pnode string
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			if t := s.Tasks[p.Task]; t != nil {
				job, ptopic, pnode = t.Job, t.Topic, t.Node
			}
		})
		if job == "" {
			return raftfsm.Command{}, fmt.Errorf("spawn: unknown task %s", p.Task)
		}
		sp.Job, sp.Parent = job, p.Task
		if m, ok := memberMap(n.gossip.Members())[pnode]; ok {
			sp.ParentKind, _, _ = memberKind(m, ptopic)
		}
		o = topic.Origin{ParentTopic: ptopic, ParentKind: sp.ParentKind}
		if req.Key != "" {
			sp.Key = "task:" + p.Task + ":" + req.Key
		}
	}
	if err := n.checkAccepted(req.Topic, o); err != nil {
		return raftfsm.Command{}, err
	}
	return raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: sp}, nil
}

// imageFirst resolves the seed's spawn_task form (api.SpawnRequest.ImageFirst)
// by how the topic's live subscribers run it.
func (n *Node) imageFirst(req api.SpawnRequest) (api.SpawnRequest, error) {
	if req.Image != "" {
		return req, errors.New("spawn: give the image either as --image or as the first argument, not both")
	}
	docker, other := 0, 0
	for _, m := range n.gossip.Members() {
		if !m.Meta.Subscribes(req.Topic) {
			continue
		}
		if kind, _, ok := memberKind(m, req.Topic); ok && kind == KindDocker {
			docker++
		} else {
			other++
		}
	}
	first := ""
	if len(req.Args) > 0 {
		first = req.Args[0]
	}
	switch {
	case docker > 0 && other > 0:
		return req, fmt.Errorf("spawn: topic %s is served both in Docker (%d nodes) and without (%d): say which you mean: spawn_task -t %s IMAGE \"CMD ARGS\" for Docker, or spawn_task -t %s - ARG... for none", req.Topic, docker, other, req.Topic, req.Topic)
	case docker > 0:
		if first == "" || first == "-" {
			return req, fmt.Errorf("spawn: topic %s runs its tasks in Docker: the first argument of spawn_task -t %s IMAGE \"CMD ARGS\" is the image", req.Topic, req.Topic)
		}
		req.Image, req.Args = first, req.Args[1:]
	case len(req.Args) > 0 && (first == "" || first == "-"):
		req.Args = req.Args[1:] // the no-image marker
	}
	if req.Args == nil {
		req.Args = []string{}
	}
	return req, nil
}

// errQuotaSize: a request is larger than a quota allows (413).
var errQuotaSize = httpapi.ErrTooLarge

// envAllowed is what the live subscribers of topic allow in --env beyond
// the defaults (--topic-env-allow): a name any of them allows passes the
// leader; each node's runner drops what it does not allow itself.
func (n *Node) envAllowed(topic string) []string {
	var out []string
	for _, m := range n.gossip.Members() {
		if m.Meta.Subscribes(topic) {
			out = append(out, m.Meta.EnvAllow[topic]...)
		}
	}
	return out
}

// ErrNotAccepted: no live node serving the topic accepts spawns from this
// origin (--topic-accept); the API answers 403.
var ErrNotAccepted = httpapi.ErrNotAccepted

// checkAccepted refuses a spawn that no live subscriber of topic would run
// (accept.go). With no live subscriber at all, the task is let in to wait
// for one; the picker and the runner still check.
func (n *Node) checkAccepted(topic string, o topic.Origin) error {
	var subs []string
	for _, m := range n.gossip.Members() {
		if !m.Meta.Subscribes(topic) {
			continue
		}
		if memberAccepts(m, topic, o) {
			return nil
		}
		kind, rules, _ := memberKind(m, topic)
		subs = append(subs, fmt.Sprintf("%s (a %s topic there: %s)", m.Name, kind, strings.Join(rules, ",")))
	}
	if len(subs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: spawn into %s from %s: no node serving it accepts that: %s; a node's operator can allow it with --topic-accept %s=RULE (docs/SECURITY.md)",
		ErrNotAccepted, topic, o, strings.Join(subs, "; "), topic)
}

// reportCommand turns a node's report into a ledger command; the
// dispatcher stamps its time and limits. A reset reads the local replica
// (which blobs the ledger names the node for).
func (n *Node) reportCommand(r api.Report) (raftfsm.Command, error) {
	switch r.Kind {
	case api.ReportBlobAdded:
		return raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{
			Hash: r.Hash, Size: r.Size, Node: r.Node, Job: r.Job, Name: r.Name}}, nil
	case api.ReportBlobDropped:
		return raftfsm.Command{Type: raftfsm.CmdBlobDropped, BlobDropped: &raftfsm.BlobDropped{Hash: r.Hash, Node: r.Node}}, nil
	case api.ReportBlobsReset:
		if r.Node == "" {
			return raftfsm.Command{}, errResetNeedsNode
		}
		var c raftfsm.Command
		n.fsm.Read(func(s *raftfsm.State, _ uint64) { c = resetCommand(s, r.Node) })
		return c, nil
	}
	if r.Task == "" || r.Attempt < 1 || r.Node == "" {
		return raftfsm.Command{}, errors.New("report: needs task, attempt and node")
	}
	switch r.Kind {
	case api.ReportStarted:
		return raftfsm.Command{Type: raftfsm.CmdTaskStarted, TaskStarted: &raftfsm.TaskStarted{Task: r.Task, Attempt: r.Attempt, Node: r.Node}}, nil
	case api.ReportFinished:
		return raftfsm.Command{Type: raftfsm.CmdTaskFinished, TaskFinished: &raftfsm.TaskFinished{
			Task: r.Task, Attempt: r.Attempt, Node: r.Node, State: r.State, ExitCode: r.ExitCode, Error: r.Error}}, nil
	case api.ReportAbandoned:
		return raftfsm.Command{Type: raftfsm.CmdRequeue, Requeue: &raftfsm.Requeue{Task: r.Task, Attempt: r.Attempt, Reason: r.Error}}, nil
	case api.ReportLogSealed:
		return raftfsm.Command{Type: raftfsm.CmdLogSealed, LogSealed: &raftfsm.LogSealed{Task: r.Task, Log: raftfsm.LogRef{
			Attempt: r.Attempt, Hash: r.Hash, Size: r.Size, Bytes: r.Bytes, Lines: r.Lines, Node: r.Node}}}, nil
	}
	return raftfsm.Command{}, fmt.Errorf("report: unknown kind %q", r.Kind)
}

// errRefused marks a report the ledger declined for good (stale attempt,
// task already settled): retrying cannot help. The runner's sentinel: it
// reads the refusals of this write path.
var errRefused = runner.ErrRefused

// applyReport delivers a report through the leader: directly when this node
// leads, else over the leader's API.
func (n *Node) applyReport(ctx context.Context, r api.Report) error {
	_, err := n.applyReportAt(ctx, r)
	return err
}

// applyReportAt is applyReport, and returns a ledger index at or after the
// report's entry that the local replica has applied (0 when the leader's
// answer did not say). The report becomes a command here and goes through
// the Writer; a reset goes to the leader, which withdraws what its current
// state names (write.go).
func (n *Node) applyReportAt(ctx context.Context, r api.Report) (uint64, error) {
	if r.Kind == api.ReportBlobsReset && n.currentDispatcher() == nil {
		base, err := n.leaderURL(ctx, 2*time.Second)
		if err != nil {
			return 0, err
		}
		idx, err := n.peers.Report(ctx, base, r)
		var se *api.StatusError
		if errors.As(err, &se) && se.HTTPStatus >= 400 && se.HTTPStatus < 500 {
			return 0, fmt.Errorf("%w: %w", errRefused, err)
		}
		return idx, err
	}
	c, err := n.reportCommand(r)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errRefused, err)
	}
	_, idx, err := n.submitAt(ctx, c)
	if err != nil && ledgerRefusal(err) {
		return 0, fmt.Errorf("%w: %w", errRefused, err)
	}
	return idx, err
}

func ledgerRefusal(err error) bool {
	for _, e := range []error{raftfsm.ErrNotFound, raftfsm.ErrJobClosed, raftfsm.ErrStaleAttempt, raftfsm.ErrConflict, raftfsm.ErrInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resolveSource pins a new job's source to one commit before the job is
// opened, so every task of the job builds the same code: a branch (or
// HEAD) is resolved on the repository now, by the leader.
func (n *Node) resolveSource(ctx context.Context, src raftfsm.Source) (raftfsm.Source, error) {
	if strings.HasPrefix(src.Repo, "-") {
		return src, fmt.Errorf("spawn: repository %q", src.Repo)
	}
	rev := cmp.Or(src.SHA, src.Branch, "HEAD")
	if isSHA(rev) {
		src.SHA = rev
		return src, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sha, err := checkout.Resolve(ctx, "", src.Repo, rev)
	if err != nil {
		return src, fmt.Errorf("spawn: %w", err)
	}
	if src.Branch == "" && rev != "HEAD" {
		src.Branch = rev // --rev named a branch or tag
	}
	src.SHA = sha
	return src, nil
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
