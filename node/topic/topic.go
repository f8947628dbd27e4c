package topic

import (
	"time"

	"github.com/ourci/ourci/node/executor"
)

// Topic is one topic a node subscribes to and how it runs its tasks.
type Topic struct {
	Name string
	// Agent is the agent script run as `Agent ARGS...`; "" runs the task's
	// ARGS as a host command.
	Agent string
	// Secrets are node-side secrets (NAME → value, from the node's own
	// environment) passed into the topic's tasks as environment variables;
	// their values, and base64 forms, are masked in stored and streamed logs.
	Secrets map[string]string
	// Executor names how the topic's tasks run (node/executor's registry):
	// "" is agent when Agent is set, else host; executor.KindDocker runs
	// each task in the Docker image it names (`--topic T=docker`).
	Executor executor.Kind
	// Container limits and policy for Docker topics (executor.Docker's
	// fields say more).
	Memory  int64   // bytes; 0: executor.DefaultMemory; negative: no limit
	CPUs    float64 // 0: executor.DefaultCPUs; negative: no limit
	Pids    int64   // 0: executor.DefaultPids; negative: no limit
	Pull    bool    // may pull a missing image (off: a missing image fails the task)
	Network string  // "": the node-managed bridge network "ourci", which reaches the node on its gateway; "host": the host's network
	User    string  // UID:GID in the container; "": executor.DefaultUser (65534:65534) for a root node, else the node's own
	// Timeout is the default task timeout for the topic; 0 means the node's.
	Timeout time.Duration
	// Accept lists which spawns the node runs on this topic (accept.go);
	// empty: the kind's default (DefaultAccept).
	Accept []string
	// EnvAllow lists variable names a spawn's --env may set on this topic
	// although they are refused by default (env.go).
	EnvAllow []string
}

// Kinds of topic: how a node runs its tasks (the executor's kinds, as the
// gossip and accept rules spell them).
const (
	KindHost   = string(executor.KindHost)
	KindAgent  = string(executor.KindAgent)
	KindDocker = string(executor.KindDocker)
)

// Kind is how this topic's tasks run: its Executor, or by default agent
// when it names an agent script, else host.
func (t Topic) Kind() string { return string(t.ExecutorKind()) }

// ExecutorKind is Kind as the executor registry names it.
func (t Topic) ExecutorKind() executor.Kind {
	switch {
	case t.Executor != "":
		return t.Executor
	case t.Agent != "":
		return executor.KindAgent
	}
	return executor.KindHost
}

// Describe is what the topic's kind of executor needs and gives (a kind
// the registry does not know describes as nothing; the node refuses such
// a topic at start).
func (t Topic) Describe() executor.Description {
	f, _ := executor.Default.Lookup(t.ExecutorKind())
	return f.Describe
}

// Rules returns the topic's accept rules: its own, or its kind's default.
func (t Topic) Rules() []string {
	if len(t.Accept) > 0 {
		return t.Accept
	}
	return DefaultAccept(t.Kind())
}
