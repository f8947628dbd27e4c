package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/raftfsm"
)

func runJoin(args []string) int {
	fs := newFlagSet("join", "[flags]")
	host, _ := os.Hostname()
	var (
		name        = fs.String("name", env("OURCI_NAME", host), "node name, unique in the mesh (env OURCI_NAME)")
		dataDir     = fs.String("data-dir", homeDir(), "data directory: ledger, Raft log, task logs (env OURCI_DATA_DIR)")
		bind        = fs.String("bind", env("OURCI_BIND", "0.0.0.0:7946"), "gossip address HOST:PORT (env OURCI_BIND)")
		raftAddr    = fs.String("raft", env("OURCI_RAFT", ""), "peer port HOST:PORT: Raft and the node-to-node API, mutual TLS only (env OURCI_RAFT; default: gossip port + 1)")
		httpAddr    = fs.String("http", env("OURCI_HTTP", ""), "API, webhook, blobs and web UI address HOST:PORT (env OURCI_HTTP; default: the --bind host, port 7380)")
		advertise   = fs.String("advertise", env("OURCI_ADVERTISE", ""), "IP others reach this node at (env OURCI_ADVERTISE; default: from --bind)")
		slots       = fs.Int("slots", envInt("OURCI_SLOTS", 0), "tasks run at once (env OURCI_SLOTS; default: CPUs)")
		secretFile  = fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret, made when starting a new mesh)")
		jobTimeout  = fs.Duration("job-timeout", time.Hour, "default job deadline")
		taskTimeout = fs.Duration("task-timeout", 30*time.Minute, "default task timeout for topics without their own")
		attempts    = fs.Int("max-attempts", 3, "attempts of a task whose nodes die before it is lost")
		grace       = fs.Duration("grace", 10*time.Second, "SIGTERM to SIGKILL grace when a task is stopped")
		replicas    = fs.Int("blob-replicas", 2, "live nodes that should hold each blob")
		retention   = fs.Duration("blob-retention", 7*24*time.Hour, "how long a closed job's blobs and names stay")
		logCopies   = fs.Int("log-copies", 2, "nodes that hold a running task's output: its own and the others it streams to (1: none)")
		logRet      = fs.Duration("log-retention", 30*24*time.Hour, "how long the sealed logs of a closed job's tasks stay, on every node holding a copy")
		history     = fs.Duration("job-history", 30*24*time.Hour, "how long a closed job stays in the ledger (at least --blob-retention and --log-retention)")
		wan         = fs.Bool("wan", false, "WAN timings for Raft and gossip (slow or lossy links)")
		voter       = fs.String("voter", env("OURCI_VOTER", node.VoterAuto), "auto: the leader may make this node a Raft voter; never: keep it out of the quorum (laptops, rigs on a power switch) (env OURCI_VOTER)")
		deadAfter   = fs.Duration("dead-server-after", 0, "how long a voter must be seen dead before the leader removes it and promotes a live non-voter (default 10s, 2m with --wan)")
		minFree     = fs.String("min-free-disk", "64m", "free space the data directory must keep; below it the node takes no work and /v1/health answers 503")
		maxLog      = fs.String("max-log-bytes", "256m", "output kept per task attempt; past it the rest is dropped behind a marker and the task runs on")
		infraTries  = fs.Int("max-infra-retries", 2, "retries on another node of an attempt that failed for the infrastructure (output not writable, checkout or start failed, the task exited 75)")
		quarantine  = fs.Int("quarantine-after", 3, "infrastructure failures in a row of one node on one topic that quarantine it for that topic (0: never); ourci-node rig release puts it back")
		maxSpawn    = fs.String("max-spawn-bytes", "64k", "quota: bytes of one spawn's topic, image, arguments and environment")
		maxTasks    = fs.Int("max-tasks-per-job", 10000, "quota: tasks in one job (0: no limit)")
		maxOpen     = fs.Int("max-open-jobs", 1000, "quota: jobs open at once (0: no limit)")
		maxBlob     = fs.String("max-blob-bytes", "8g", "quota: bytes of one blob")
		maxJobBlobs = fs.String("max-job-blob-bytes", "32g", "quota: blob bytes one job may refer to")
		taskUser    = fs.String("task-user", env("OURCI_TASK_USER", ""), "run host and agent-script tasks as this unprivileged user (name or uid; the node must run as root): they own their workspace and cannot read the data directory or the secret (env OURCI_TASK_USER)")
		workDir     = fs.String("work-dir", env("OURCI_WORK_DIR", ""), "directory of the tasks' workspaces, the node's own (env OURCI_WORK_DIR; default DATA_DIR/work, with --task-user TMPDIR/ourci-work/NAME-ID)")
		verbose     = fs.Bool("v", false, "debug logging")
		peers       listFlag
		topics      listFlag
		topicTO     listFlag
	)
	fs.Var(&peers, "peer", "gossip address of any member to join (repeatable; env OURCI_PEERS, comma-separated)")
	fs.Var(&topics, "topic", "TOPIC[=AGENT_SCRIPT] to subscribe to (repeatable; env OURCI_TOPICS, comma-separated)")
	fs.Var(&topicTO, "topic-timeout", "TOPIC=DURATION: default task timeout for one topic (repeatable)")
	var topicAccept, topicEnvAllow listFlag
	fs.Var(&topicAccept, "topic-accept", "TOPIC=RULE,...: which spawns this node runs on TOPIC: operator, tasks, host-tasks, agent-tasks, docker-tasks, topic:GLOB (default: host topics operator,host-tasks; agent and Docker topics operator,tasks) (repeatable)")
	fs.Var(&topicEnvAllow, "topic-env-allow", "TOPIC=NAME,...: let spawns on TOPIC set these --env names although they are refused by default (LD_*, PATH, BASH_ENV, ...) (repeatable)")
	var gh githubFlags
	gh.register(fs)
	var tf tlsFlags
	tf.register(fs)
	var nf netFlags
	nf.register(fs)
	var secretEnv listFlag
	fs.Var(&secretEnv, "secret-env", "TOPIC=NAME: pass this node's $NAME into the topic's tasks, masked in logs (repeatable)")
	var topicMem, topicCPUs, topicPids, topicPull, topicNet, topicUser listFlag
	fs.Var(&topicMem, "topic-memory", "TOPIC=SIZE: memory limit (swap included) of a Docker topic's containers, e.g. 2g, or none (default 4g) (repeatable)")
	fs.Var(&topicCPUs, "topic-cpus", "TOPIC=N: CPU limit of a Docker topic's containers, e.g. 1.5, or none (default 2) (repeatable)")
	fs.Var(&topicPids, "topic-pids", "TOPIC=N: processes and threads a Docker topic's container may have, or none (default 4096) (repeatable)")
	fs.Var(&topicPull, "topic-pull", "TOPIC: let a Docker topic pull missing images (default: a missing image fails the task) (repeatable)")
	fs.Var(&topicNet, "topic-network", "TOPIC=NETWORK: container network of a Docker topic (default: the bridge network ourci, without traffic between containers, reaching this node on its gateway; host: the host's network, as before) (repeatable)")
	fs.Var(&topicUser, "topic-user", "TOPIC=UID:GID: user of a Docker topic's containers (default 65534:65534 for a root node, else the node's own; 0:0 for root) (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(os.Stderr, "ourci-node join: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if len(peers) == 0 {
		peers = splitList(os.Getenv("OURCI_PEERS"))
	}
	if len(topics) == 0 {
		topics = splitList(os.Getenv("OURCI_TOPICS"))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := node.Config{
		Name: *name, DataDir: *dataDir, Bind: *bind, Raft: *raftAddr, HTTP: *httpAddr, Advertise: *advertise,
		Peers: peers, Slots: *slots, JobTimeout: *jobTimeout, TaskTimeout: *taskTimeout,
		MaxAttempts: *attempts, Grace: *grace, Logger: logger,
		BlobReplicas: *replicas, BlobRetention: *retention, LogRetention: *logRet, LogCopies: *logCopies, JobHistory: *history,
		Voter: *voter, DeadServerAfter: *deadAfter, MaxInfraRetries: *infraTries,
		TaskUser: *taskUser, WorkDir: *workDir,
	}
	if cfg.WorkDir != "" {
		if cfg.WorkDir, err = filepath.Abs(cfg.WorkDir); err != nil {
			fmt.Fprintf(os.Stderr, "ourci-node join: --work-dir: %v\n", err)
			return exitUsage
		}
	}
	sizes := []struct {
		flag string
		v    string
		to   *int64
	}{{"max-blob-bytes", *maxBlob, &cfg.MaxBlobBytes}, {"max-job-blob-bytes", *maxJobBlobs, &cfg.MaxJobBlobBytes}}
	for _, q := range sizes {
		if *q.to, err = parseSize(q.v); err != nil {
			fmt.Fprintf(os.Stderr, "ourci-node join: --%s %s: %v\n", q.flag, q.v, err)
			return exitUsage
		}
	}
	spawnBytes, err := parseSize(*maxSpawn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ourci-node join: --max-spawn-bytes %s: %v\n", *maxSpawn, err)
		return exitUsage
	}
	cfg.MaxSpawnBytes = int(spawnBytes)
	cfg.MaxTasksPerJob, cfg.MaxOpenJobs = noLimit(*maxTasks), noLimit(*maxOpen)
	if *infraTries == 0 {
		cfg.MaxInfraRetries = -1 // none (0 would mean the default)
	}
	cfg.QuarantineAfter = *quarantine
	if *quarantine == 0 {
		cfg.QuarantineAfter = -1 // never
	}
	if err := nf.apply(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "ourci-node join: %v\n", err)
		return exitUsage
	}
	if cfg.MinFreeDisk, err = parseSize(*minFree); err != nil {
		fmt.Fprintf(os.Stderr, "ourci-node join: --min-free-disk %s: %v\n", *minFree, err)
		return exitUsage
	}
	if cfg.MaxLogBytes, err = parseSize(*maxLog); err != nil {
		fmt.Fprintf(os.Stderr, "ourci-node join: --max-log-bytes %s: %v\n", *maxLog, err)
		return exitUsage
	}
	if *wan {
		cfg.RaftTiming, cfg.GossipProfile = raftfsm.WAN, gossip.WAN
	}
	timeouts := map[string]time.Duration{}
	for _, s := range topicTO {
		t, d, ok := strings.Cut(s, "=")
		v, err := time.ParseDuration(d)
		if !ok || err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "ourci-node join: --topic-timeout %q: want TOPIC=DURATION\n", s)
			return exitUsage
		}
		timeouts[t] = v
	}
	for _, s := range topics {
		t, agent, _ := strings.Cut(s, "=")
		tp := node.Topic{Name: t, Timeout: timeouts[t]}
		switch agent {
		case "":
		case "docker":
			tp.Executor = executor.KindDocker
		default:
			if abs, err := filepath.Abs(agent); err == nil {
				agent = abs
			}
			if _, err := os.Stat(agent); err != nil {
				fmt.Fprintf(os.Stderr, "ourci-node join: --topic %s: agent script: %v\n", t, err)
				return exitUsage
			}
			tp.Agent = agent
		}
		cfg.Topics = append(cfg.Topics, tp)
	}
	if err := topicLists(cfg.Topics, "topic-accept", topicAccept, func(t *node.Topic, v []string) { t.Accept = v }); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitUsage
	}
	if err := topicLists(cfg.Topics, "topic-env-allow", topicEnvAllow, func(t *node.Topic, v []string) { t.EnvAllow = v }); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitUsage
	}
	if err := secretEnvs(cfg.Topics, secretEnv); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitUsage
	}
	if err := dockerLimits(cfg.Topics, dockerFlags{topicMem, topicCPUs, topicPids, topicPull, topicNet, topicUser}); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitUsage
	}
	if cfg.GitHub, err = gh.config(); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitUsage
	}
	cfg.Secret, err = joinSecret(*secretFile, *dataDir, len(peers) == 0, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitAuth
	}
	// Every secret is read: none stays in the node's environment, where
	// its children and anyone who may read /proc/PID/environ would find it.
	if err := scrubEnv(secretEnvNames(secretEnv)...); err != nil {
		logger.Warn("secrets read from the environment could not be removed from /proc/self/environ", "err", err)
	}
	if cfg.TLS, err = tf.peer(cfg.Name); err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		return exitAuth
	}

	n, err := node.Start(cfg)
	if msg, ok := dataDirMessage(err); ok { // damaged, or in use (operator.go)
		fmt.Fprintln(os.Stderr, "ourci-node join:", msg)
		return exitError
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node join:", err)
		if errors.Is(err, node.ErrConfig) {
			return exitUsage
		}
		return exitError
	}
	ctx, stop := signalContext()
	defer stop()
	select {
	case <-n.Done():
		logger.Info("drained: this node left the mesh")
		return exitOK
	case <-ctx.Done():
	}
	logger.Info("shutting down: handing running tasks back to the mesh")
	if err := n.Close(); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	return exitOK
}

// joinSecret loads the cluster secret. A node that starts a new mesh and has
// none makes one (in --secret-file, or DATA_DIR/cluster.secret).
func joinSecret(path, dataDir string, newMesh bool, log *slog.Logger) (node.Secret, error) {
	if path == "" {
		path = filepath.Join(dataDir, "cluster.secret")
	}
	s, err := node.LoadSecret(path)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !newMesh {
		if errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("joining a mesh needs its secret: copy the first node's cluster.secret and give --secret-file (%w)", err)
		}
		return s, err
	}
	s = node.NewSecret()
	if err := node.WriteSecret(path, s); err != nil {
		return s, err
	}
	log.Info("made a new cluster secret; give it to other nodes with --secret-file", "path", path)
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// dockerFlags are the per-topic container flags of join.
type dockerFlags struct {
	mem, cpus, pids, pull, network, user []string
}

// dockerLimits applies the --topic-memory/-cpus/-pids/-pull/-network/-user
// flags. "none" is no limit (a negative value in node.Topic).
func dockerLimits(topics []node.Topic, f dockerFlags) error {
	find := func(flag, name string) (*node.Topic, error) {
		for i := range topics {
			if topics[i].Name == name {
				if topics[i].Kind() != node.KindDocker {
					return nil, fmt.Errorf("--%s %s: topic %s is not a Docker topic (--topic %s=docker)", flag, name, name, name)
				}
				return &topics[i], nil
			}
		}
		return nil, fmt.Errorf("--%s %s: no --topic %s", flag, name, name)
	}
	for _, s := range f.mem {
		name, v, _ := strings.Cut(s, "=")
		t, err := find("topic-memory", name)
		if err != nil {
			return err
		}
		if v == "none" {
			t.Memory = -1
		} else if t.Memory, err = parseSize(v); err != nil {
			return fmt.Errorf("--topic-memory %s: %w (or none)", s, err)
		}
	}
	for _, s := range f.cpus {
		name, v, _ := strings.Cut(s, "=")
		t, err := find("topic-cpus", name)
		if err != nil {
			return err
		}
		if v == "none" {
			t.CPUs = -1
		} else if t.CPUs, err = strconv.ParseFloat(v, 64); err != nil || t.CPUs <= 0 {
			return fmt.Errorf("--topic-cpus %s: want TOPIC=N with N > 0, or none", s)
		}
	}
	for _, s := range f.pids {
		name, v, _ := strings.Cut(s, "=")
		t, err := find("topic-pids", name)
		if err != nil {
			return err
		}
		if v == "none" {
			t.Pids = -1
		} else if t.Pids, err = strconv.ParseInt(v, 10, 64); err != nil || t.Pids <= 0 {
			return fmt.Errorf("--topic-pids %s: want TOPIC=N with N > 0, or none", s)
		}
	}
	for _, name := range f.pull {
		t, err := find("topic-pull", name)
		if err != nil {
			return err
		}
		t.Pull = true
	}
	for _, s := range f.network {
		name, v, _ := strings.Cut(s, "=")
		t, err := find("topic-network", name)
		if err != nil {
			return err
		}
		if v == "" {
			return fmt.Errorf("--topic-network %s: want TOPIC=NETWORK", s)
		}
		t.Network = v
	}
	for _, s := range f.user {
		name, v, _ := strings.Cut(s, "=")
		t, err := find("topic-user", name)
		if err != nil {
			return err
		}
		t.User = v // node.Config checks UID:GID
	}
	return nil
}

// secretEnvNames are the environment variables join reads secrets from:
// the GitHub token, the SMTP password, a token, and each --secret-env NAME.
func secretEnvNames(secretEnv []string) []string {
	names := []string{github.TokenEnv, "OURCI_SMTP_PASSWORD", "OURCI_TOKEN"}
	for _, s := range secretEnv {
		if _, name, ok := strings.Cut(s, "="); ok && name != "" {
			names = append(names, name)
		}
	}
	return names
}

// parseSize reads 512m, 2g, 1048576 (bytes).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(strings.ToLower(s), "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("want a size such as 512m or 2g")
	}
	return v * mult, nil
}

// secretEnvs applies --secret-env TOPIC=NAME: the value comes from this
// process's environment, never from the command line.
func secretEnvs(topics []node.Topic, specs []string) error {
	for _, s := range specs {
		topic, name, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return fmt.Errorf("--secret-env %q: want TOPIC=NAME", s)
		}
		v, set := os.LookupEnv(name)
		if !set || v == "" {
			return fmt.Errorf("--secret-env %s: $%s is not set in this node's environment", s, name)
		}
		found := false
		for i := range topics {
			if topics[i].Name == topic {
				if topics[i].Secrets == nil {
					topics[i].Secrets = map[string]string{}
				}
				topics[i].Secrets[name] = v
				found = true
			}
		}
		if !found {
			return fmt.Errorf("--secret-env %s: no --topic %s", s, topic)
		}
	}
	return nil
}

// noLimit maps a count flag to node.Config: 0 means none (negative there).
func noLimit(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// topicLists applies a repeatable TOPIC=A,B,... flag.
func topicLists(topics []node.Topic, flag string, specs []string, set func(*node.Topic, []string)) error {
	for _, s := range specs {
		name, v, ok := strings.Cut(s, "=")
		if !ok || v == "" {
			return fmt.Errorf("--%s %q: want TOPIC=A,B,...", flag, s)
		}
		found := false
		for i := range topics {
			if topics[i].Name == name {
				set(&topics[i], splitList(v))
				found = true
			}
		}
		if !found {
			return fmt.Errorf("--%s %s: no --topic %s", flag, s, name)
		}
	}
	return nil
}
