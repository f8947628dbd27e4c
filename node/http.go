package node

import (
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/raftfsm"
)

// The HTTP API is node/httpapi; this file gives it the node: the
// services its handlers call, and the routes still served here.

// handler is a route's handler once the request is authenticated.
type handler = httpapi.Handler

// maxBody bounds every request body the API reads.
const maxBody = httpapi.MaxBody

// newAPI builds the node's httpapi.Server (once, at Start).
func (n *Node) newAPI() *httpapi.Server {
	return &httpapi.Server{
		Ledger: n.fsm, Secret: n.cfg.Secret, Writer: n.writer(), Lead: leadership{n},
		Jobs: jobService{n}, Reports: reportService{n}, Operator: operatorService{n}, Log: n.log,
		Health: healthService{n}, Keyring: keyringService{n}, Snapshots: snapshots{n},
		Webhooks: webhooks{n}, WebhookBudget: n.hooks, Metrics: n.metrics.Handler(),
		Blobs: blobService{n}, Logs: logService{n}, Counters: n.metrics, RegisterUI: n.registerUI,
	}
}

// leadership is httpapi.Leadership.
type leadership struct{ n *Node }

func (l leadership) Dispatching() bool { return l.n.currentDispatcher() != nil }
func (l leadership) WaitDispatching(ctx context.Context, max time.Duration) bool {
	return l.n.waitDispatcher(ctx, max)
}
func (l leadership) IsLeader() bool { return l.n.IsLeader() }
func (l leadership) LeaderURL(ctx context.Context, max time.Duration) (string, error) {
	return l.n.leaderURL(ctx, max)
}
func (l leadership) PeerURL() string              { return l.n.peerURL }
func (l leadership) Name() string                 { return l.n.cfg.Name }
func (l leadership) Transport() http.RoundTripper { return l.n.peerHTTP.Transport }
func (l leadership) Frozen() bool                 { return l.n.replicaFrozen() }

// jobService is httpapi.Jobs (commands.go, views.go).
type jobService struct{ n *Node }

func (s jobService) SpawnCommand(ctx context.Context, req api.SpawnRequest, p auth.Principal) (raftfsm.Command, error) {
	if !p.IsTask() && req.Source.Repo != "" {
		src, err := s.n.resolveSource(ctx, req.Source)
		if err != nil {
			return raftfsm.Command{}, err
		}
		req.Source = src
	}
	return s.n.spawnCommand(req, p)
}

func (s jobService) ApproveCommand(id, by string) raftfsm.Command {
	return raftfsm.Command{Type: raftfsm.CmdApprove, Approve: &raftfsm.Approve{
		Job: id, By: by, Deadline: s.n.cfg.Clock.Now().UTC().Add(s.n.cfg.JobTimeout)}}
}

func (s jobService) Job(id string) (api.JobDetail, bool) { return s.n.jobDetail(id) }
func (s jobService) Status() api.Status                  { return s.n.Status() }

// reportService is httpapi.Reports.
type reportService struct{ n *Node }

func (s reportService) ReportCommand(r api.Report) (raftfsm.Command, error) {
	return s.n.reportCommand(r)
}

// operatorService is httpapi.Operator (operator_raft.go, drain.go).
type operatorService struct{ n *Node }

func (s operatorService) Name() string                      { return s.n.cfg.Name }
func (s operatorService) RaftPeers() (api.RaftPeers, error) { return s.n.raftPeers() }
func (s operatorService) Drain(ctx context.Context) error   { return s.n.Drain(ctx) }
func (s operatorService) RemoveServer(id string, timeout time.Duration) error {
	return s.n.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
}
func (s operatorService) ServersNamed(name string) []string {
	var out []string
	for _, id := range s.n.serversNamed(name) {
		out = append(out, string(id))
	}
	return out
}

// healthService is httpapi.Health.
type healthService struct{ n *Node }

func (s healthService) Name() string      { return s.n.cfg.Name }
func (s healthService) Unhealthy() string { return s.n.Unhealthy() }
func (s healthService) Ready() bool       { return s.n.isReady() }

// keyringService is httpapi.Keyring: gossip's keyring, saved in the data
// directory (keyring.go).
type keyringService struct{ n *Node }

func (k keyringService) Keys() [][]byte              { return k.n.gossip.Keys() }
func (k keyringService) InstallKey(key []byte) error { return k.n.gossip.InstallKey(key) }
func (k keyringService) UseKey(key []byte) error     { return k.n.gossip.UseKey(key) }
func (k keyringService) RemoveKey(key []byte) error  { return k.n.gossip.RemoveKey(key) }
func (k keyringService) Save() error                 { return k.n.saveKeyring() }

// snapshots is httpapi.Snapshots.
type snapshots struct{ n *Node }

func (s snapshots) Barrier(timeout time.Duration) error { return s.n.raft.Barrier(timeout).Error() }
func (s snapshots) Backup() (*raftfsm.Backup, error)    { return s.n.fsm.Backup(s.n.cfg.Clock.Now()) }
func (s snapshots) Restore(st *raftfsm.State, timeout time.Duration) (uint64, error) {
	return s.n.raft.RestoreState(st, timeout)
}

// waitDispatcher waits until this node's leader loops run, or max passed,
// or it stops leading: woken by leadership changes, never by polling.
func (n *Node) waitDispatcher(ctx context.Context, max time.Duration) bool {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		changed := n.leading.wait() // before the checks: a change between them still wakes us
		if n.currentDispatcher() != nil {
			return true
		}
		if !n.IsLeader() {
			return false
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// waitIndex waits until the local replica has applied idx, or max passed.
func (n *Node) waitIndex(ctx context.Context, idx uint64, max time.Duration) {
	httpapi.WaitIndex(ctx, n.fsm, idx, max)
}

// waitReplica waits until cond holds on the local replica, or max passed
// or ctx ended (httpapi.WaitReplica).
func (n *Node) waitReplica(ctx context.Context, max time.Duration, cond func(s *raftfsm.State) bool) bool {
	return httpapi.WaitReplica(ctx, n.fsm, max, cond)
}

// Answers in the API's shape (node/httpapi).
var (
	writeJSON        = httpapi.WriteJSON
	writeError       = httpapi.WriteError
	writeLedgerError = httpapi.WriteLedgerError
	decodeBody       = httpapi.DecodeBody
)
