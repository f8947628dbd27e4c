package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// Server is the node's HTTP API. Every field but Log must be set before
// Routes.
type Server struct {
	Ledger    Ledger
	Secret    Authenticator
	Writer    leader.Writer // every write a handler makes
	Lead      Leadership    // where writes run (relay.go)
	Jobs      Jobs
	Reports   Reports
	Operator  Operator
	Health    Health
	Keyring   Keyring
	Snapshots Snapshots
	Webhooks  Webhooks
	Blobs     Blobs
	Logs      Logs
	Counters  Counters
	// RegisterUI mounts the browser UI (node/web) on the route table.
	RegisterUI func(mux *http.ServeMux)
	// Metrics serves Prometheus's scrapes (nil: not set up).
	Metrics http.Handler
	// WebhookBudget caps the webhook bytes in flight on the public port.
	WebhookBudget *WebhookBudget
	Log           *slog.Logger
}

// Handler is a route's handler once the request is authenticated.
type Handler func(w http.ResponseWriter, r *http.Request, p auth.Principal)

// Ledger is the node's replica.
type Ledger interface {
	Read(fn func(s *raftfsm.State, index uint64))
	Watch() (uint64, <-chan struct{})
	Index() uint64
}

// Authenticator checks a bearer token's signature (auth.Secret).
type Authenticator interface {
	Authenticate(token string) (auth.Principal, error)
}

// Jobs does the work of the job and spawn routes.
type Jobs interface {
	// SpawnCommand validates a spawn by p and builds its command: the
	// source pinned to a commit, the topic's policy checked (errors wrap
	// ErrTooLarge or ErrNotAccepted; any other is a bad request).
	SpawnCommand(ctx context.Context, req api.SpawnRequest, p auth.Principal) (raftfsm.Command, error)
	// ApproveCommand lets held job id run; by names who approved.
	ApproveCommand(id, by string) raftfsm.Command
	// Job is a job's detail on this replica.
	Job(id string) (api.JobDetail, bool)
	// Status is the mesh's and the ledger's state as this node sees it.
	Status() api.Status
}

// Counters count what the API refused (metrics).
type Counters interface {
	// QuotaRefused counts a write a quota refused.
	QuotaRefused(quota string)
	// LogChunksAnswered counts a post of log chunks by its outcome.
	LogChunksAnswered(outcome string)
}

// Reports turns a node's report (the route of older binaries, and blob
// store resets) into its command, on the leader.
type Reports interface {
	ReportCommand(r api.Report) (raftfsm.Command, error)
}

// Operator does the work of the Raft group's and the drain's routes.
type Operator interface {
	Name() string // this node's
	RaftPeers() (api.RaftPeers, error)
	// ServersNamed is the Raft IDs of the servers that stand for node name.
	ServersNamed(name string) []string
	RemoveServer(id string, timeout time.Duration) error
	Drain(ctx context.Context) error
}
