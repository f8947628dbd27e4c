package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/faults"
	"github.com/ourci/ourci/node/meshtls"
	"github.com/ourci/ourci/node/topic"
	"github.com/ourci/ourci/raftfsm"
)

// Topic is one topic this node subscribes to and how it runs its tasks
// (node/topic).
type Topic = topic.Topic

// Config is everything a node needs. Zero values take the documented
// defaults in withDefaults.
type Config struct {
	Name      string   // unique in the mesh; default: the host name
	DataDir   string   // ledger, Raft log, secret, task logs and workspaces
	Bind      string   // gossip host:port (default 0.0.0.0:7946; port 0 picks one)
	Raft      string   // Raft host:port (default: the gossip port + 1)
	HTTP      string   // API host:port (default: the --bind host, port 7380)
	Advertise string   // host others reach this node at; default: derived from Bind
	Peers     []string // gossip addresses of members to join; none starts a new mesh
	Topics    []Topic
	Slots     int // tasks run at once (default: number of CPUs)
	// WorkDir holds the workspaces of the node's tasks, one per attempt
	// (default DATA_DIR/work; with TaskUser, TMPDIR/ourci-work/NAME-ID, as
	// DATA_DIR is 0700). It must be the node's own.
	WorkDir string
	// TaskUser runs host and agent-script tasks as this unprivileged
	// account (name or uid; the node must run as root): they own their
	// workspace and cannot read the data directory or the secret.
	TaskUser string

	Secret Secret // the cluster secret (see LoadConfigSecret)
	// TLS is the node's mesh certificate for node-to-node mutual TLS (Raft
	// and the peer API, on the Raft port). Nil: the node issues itself one
	// from the CA derived from Secret. Its name must be the node's.
	TLS *meshtls.Peer

	JobTimeout time.Duration
	// TaskTimeout is the default for tasks without --timeout on topics
	// without their own default (default 30 minutes).
	TaskTimeout time.Duration
	MaxAttempts int           // attempts before a task whose nodes keep dying is lost (default 3)
	Grace       time.Duration // SIGTERM → SIGKILL grace when a task is stopped (default 10s)

	// BlobReplicas is how many live nodes should hold each blob (default 2).
	BlobReplicas int
	// BlobRetention is how long a closed job's blobs and names stay
	// (default 7 days); blobs outside any job live this long after upload.
	BlobRetention time.Duration
	// LogCopies is how many nodes hold a running attempt's output: its
	// own and LogCopies-1 others it streams to (default 2; 1: none).
	LogCopies int
	// LogRetention is how long the sealed logs of a closed job's tasks
	// stay (default 30 days), on every node that holds a copy.
	LogRetention time.Duration
	// JobHistory is how long a closed job stays in the ledger at all
	// (default 30 days; at least BlobRetention and LogRetention): then it
	// is forgotten with its tasks and their logs, which keeps the ledger
	// and data dir bounded.
	JobHistory time.Duration

	// Voter is VoterAuto (the leader may make this node a Raft voter) or
	// VoterNever (machines that come and go: a laptop, a rig on a power
	// switch). Default auto.
	Voter string
	// DeadServerAfter is how long gossip must have seen a Raft voter dead
	// before the leader removes it and promotes a live non-voter in its
	// place (default 10s; 2m with the WAN profile). Dead non-voters go
	// after at least 5 minutes.
	DeadServerAfter time.Duration
	// MinFreeDisk is the free space the data directory must keep: below
	// it the node is unhealthy and takes no work (default 64 MiB).
	MinFreeDisk int64
	// MaxLogBytes caps one attempt's stored output; past it the output is
	// dropped with a marker and the task runs on (default 256 MiB).
	MaxLogBytes int64
	// MaxInfraRetries is how many times an attempt that failed for the
	// infrastructure (its node could not write its output, make its
	// workspace or start it) is retried on another node before the task
	// ends infra_failed (default 2; negative: none).
	MaxInfraRetries int
	// QuarantineAfter is how many infrastructure failures in a row of one
	// node on one topic quarantine that rig: the ledger records it with
	// the reason and the picker gives it no new task of the topic until an
	// operator releases it (default 3; negative: never). The leader's
	// counts for the mesh.
	QuarantineAfter int

	// Quotas (0: the default; negative: none), each refusal a clear error
	// counted in ourci_quota_refused_total:
	MaxSpawnBytes   int   // bytes of one spawn's topic, image, arguments and environment (default 64 KiB)
	MaxTasksPerJob  int   // tasks in one job (default 10,000)
	MaxOpenJobs     int   // jobs open at once (default 1,000)
	MaxBlobBytes    int64 // one blob (default 8 GiB)
	MaxJobBlobBytes int64 // the blob bytes one job refers to (default 32 GiB)

	// GitHub turns the webhook and commit statuses on; nil: off.
	GitHub *GitHubConfig
	// WebhookInflight caps the webhook body bytes this node holds while
	// it reads and verifies them; a webhook past it is answered 503 with
	// Retry-After (default 64 MiB; webhook.go).
	WebhookInflight int64

	// Connection limits of the API servers (netguard.go; 0 takes the
	// Default*): headers, the wait for a keep-alive connection's next
	// request, a request's body and its response (not on the routes that
	// stream), and the public API's open connections per client address
	// (-1: no cap), loopback addresses apart.
	HTTPHeaderTimeout time.Duration
	HTTPIdleTimeout   time.Duration
	HTTPReadTimeout   time.Duration
	HTTPWriteTimeout  time.Duration
	MaxConnsPerClient int
	MaxConnsLoopback  int
	// LogEvery is how often a line about one outside source (a refused
	// connection, a bad gossip packet) is written at most (default 10s).
	LogEvery time.Duration

	Clock  clock.Clock
	Logger *slog.Logger
	// Executor runs every topic's tasks (tests); nil means the host
	// executor, or Docker for Docker topics.
	Executor Executor
	// GossipSchema is the ledger schema this node says it knows (tests of
	// meshes mid-upgrade); 0 means raftfsm.LedgerSchema, the truth.
	GossipSchema int
	// Binary is the ourci-node executable whose directory leads tasks' PATH.
	Binary string

	RaftTiming    raftfsm.Timing
	GossipProfile gossip.Profile

	// Faults, for tests only, cuts links to other nodes in-process: Raft,
	// gossip and the peer HTTP client ask it before each dial or packet
	// (node/faults). Nil in production: none of that code runs.
	Faults faults.Faults
}

// peerDial is the peer HTTP client's dialer under Faults; nil (net's own)
// without.
func (c Config) peerDial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	cut := faults.From(c.Faults, c.Name)
	if cut == nil {
		return nil
	}
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return faults.Dial(cut, addr, func() (net.Conn, error) { return d.DialContext(ctx, network, addr) })
	}
}

// Voter settings (Config.Voter, --voter).
const (
	VoterAuto  = "auto"
	VoterNever = "never"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("node: config")

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		return c, fmt.Errorf("%w: a node needs a name", ErrConfig)
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("%w: name %q: use letters, digits, '.', '_' and '-' (at most 63)", ErrConfig, c.Name)
	}
	if c.DataDir == "" {
		return c, fmt.Errorf("%w: a node needs a data directory", ErrConfig)
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(c.DataDir, "work")
		if c.TaskUser != "" { // its tasks cannot reach into the 0700 data directory
			c.WorkDir = filepath.Join(os.TempDir(), "ourci-work", nodeKey(c.Name, c.DataDir))
		}
	}
	if c.Bind == "" {
		c.Bind = "0.0.0.0:7946"
	}
	if c.Raft == "" {
		h, p, err := net.SplitHostPort(c.Bind)
		if err != nil {
			return c, fmt.Errorf("%w: --bind %q: %w", ErrConfig, c.Bind, err)
		}
		port, _ := strconv.Atoi(p)
		if port != 0 {
			port++
		}
		c.Raft = net.JoinHostPort(h, strconv.Itoa(port))
	}
	if c.HTTP == "" {
		// The API listens where gossip does: peers call it (forwarded
		// writes, blob fetches) at the advertised address.
		h, p, err := net.SplitHostPort(c.Bind)
		if err != nil {
			return c, fmt.Errorf("%w: --bind %q: %w", ErrConfig, c.Bind, err)
		}
		if p == "0" {
			c.HTTP = net.JoinHostPort(h, "0")
		} else {
			c.HTTP = net.JoinHostPort(h, "7380")
		}
	}
	if c.Slots == 0 {
		c.Slots = defaultSlots()
	}
	switch c.Voter {
	case "":
		c.Voter = VoterAuto
	case VoterAuto, VoterNever:
	default:
		return c, fmt.Errorf("%w: --voter %q: want auto or never", ErrConfig, c.Voter)
	}
	if c.RaftTiming == (raftfsm.Timing{}) {
		c.RaftTiming = raftfsm.LAN
	}
	if c.DeadServerAfter == 0 {
		c.DeadServerAfter = 10 * time.Second
		if c.GossipProfile == gossip.WAN {
			c.DeadServerAfter = 2 * time.Minute
		}
	}
	if c.MinFreeDisk == 0 {
		c.MinFreeDisk = 64 << 20
	}
	if c.MaxLogBytes == 0 {
		c.MaxLogBytes = 256 << 20
	}
	switch {
	case c.MaxInfraRetries == 0:
		c.MaxInfraRetries = 2
	case c.MaxInfraRetries < 0:
		c.MaxInfraRetries = 0
	}
	switch {
	case c.QuarantineAfter == 0:
		c.QuarantineAfter = 3
	case c.QuarantineAfter < 0:
		c.QuarantineAfter = 0
	}
	c.MaxSpawnBytes = quota(c.MaxSpawnBytes, 64<<10)
	c.MaxTasksPerJob = quota(c.MaxTasksPerJob, 10_000)
	c.MaxOpenJobs = quota(c.MaxOpenJobs, 1_000)
	c.MaxBlobBytes = quota(c.MaxBlobBytes, 8<<30)
	c.MaxJobBlobBytes = quota(c.MaxJobBlobBytes, 32<<30)
	if c.DeadServerAfter < 0 || c.MinFreeDisk < 0 || c.MaxLogBytes < 0 {
		return c, fmt.Errorf("%w: negative --dead-server-after, --min-free-disk or --max-log-bytes", ErrConfig)
	}
	if c.Slots < 0 {
		return c, fmt.Errorf("%w: --slots %d", ErrConfig, c.Slots)
	}
	if err := validateTopics(c.Topics); err != nil {
		return c, err
	}
	if c.Secret.IsZero() {
		return c, fmt.Errorf("%w: no cluster secret", ErrConfig)
	}
	if c.TLS != nil && c.TLS.Name != c.Name {
		return c, fmt.Errorf("%w: the TLS certificate is for node %q, but this node is %q", ErrConfig, c.TLS.Name, c.Name)
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = time.Hour
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = 30 * time.Minute
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.BlobReplicas == 0 {
		c.BlobReplicas = 2
	}
	if c.BlobRetention == 0 {
		c.BlobRetention = 7 * 24 * time.Hour
	}
	if g := c.GitHub; g != nil {
		if g.Topic == "" {
			g.Topic = "ourci/build/docker"
		}
		if len(g.Command) == 0 {
			g.Command = []string{"ci/all.sh"}
		}
	}
	if c.JobHistory == 0 {
		c.JobHistory = 30 * 24 * time.Hour
	}
	if c.LogCopies == 0 {
		c.LogCopies = 2
	}
	if c.LogRetention == 0 {
		c.LogRetention = 30 * 24 * time.Hour
	}
	c.JobHistory = max(c.JobHistory, c.BlobRetention, c.LogRetention)
	c, err := c.netDefaults()
	if err != nil {
		return c, err
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func validateTopics(topics []Topic) error {
	seen := map[string]bool{}
	for _, t := range topics {
		if t.Name == "" || strings.ContainsAny(t.Name, " \t\n=") {
			return fmt.Errorf("%w: topic %q: a topic is a non-empty name without spaces or '='", ErrConfig, t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: topic %q given twice", ErrConfig, t.Name)
		}
		seen[t.Name] = true
		f, err := executor.Default.Lookup(t.ExecutorKind())
		if err != nil {
			return fmt.Errorf("%w: topic %q: %w", ErrConfig, t.Name, err)
		}
		if f.Describe.Script && t.Agent == "" {
			return fmt.Errorf("%w: topic %q: the %s executor runs an agent script: name it (--topic %s=SCRIPT)", ErrConfig, t.Name, t.ExecutorKind(), t.Name)
		}
		if t.Agent != "" && !f.Describe.Script {
			return fmt.Errorf("%w: topic %q: a topic runs tasks through an agent script or as %s, not both", ErrConfig, t.Name, t.ExecutorKind())
		}
		if err := validateAccept(t.Name, t.Accept); err != nil {
			return err
		}
		if !f.Describe.Limits && (t.Memory != 0 || t.CPUs != 0 || t.Pids != 0 || t.Pull || t.Network != "" || t.User != "") {
			return fmt.Errorf("%w: topic %q: container limits apply only to Docker topics (--topic %s=docker)", ErrConfig, t.Name, t.Name)
		}
		if t.User != "" {
			u, g, ok := strings.Cut(t.User, ":")
			_, err1 := strconv.ParseUint(u, 10, 32)
			_, err2 := strconv.ParseUint(g, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return fmt.Errorf("%w: topic %q: container user %q: want UID:GID (numbers, as the node hands the workspace to them)", ErrConfig, t.Name, t.User)
			}
		}
	}
	return nil
}

// offer is what a node offers the mesh: its topics and slots. It can
// change while the node runs (Node.SetOffer); readers load it atomically.
type offer struct {
	topics []Topic
	slots  int
}

func (o *offer) topic(name string) (Topic, bool) {
	for _, t := range o.topics {
		if t.Name == name {
			return t, true
		}
	}
	return Topic{}, false
}

func (o *offer) topicNames() []string {
	out := make([]string, len(o.topics))
	for i, t := range o.topics {
		out[i] = t.Name
	}
	return out
}

// quota applies a quota's default: 0 is the default, negative none (0).
func quota[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
