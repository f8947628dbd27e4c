package node

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/executor"
)

// Privilege only flows down, and each node decides what it runs. A node
// states per topic which spawns it accepts (--topic-accept TOPIC=RULE,...):
//
//	operator      root tasks: the CLI with an operate or the cluster token, a webhook
//	tasks         children of any task of the mesh
//	host-tasks    children of tasks that ran as host commands
//	agent-tasks   children of tasks that ran through an agent script
//	docker-tasks  children of tasks that ran in a container
//	topic:GLOB    children of tasks of topics matching GLOB (path.Match)
//
// Defaults: a host-command topic accepts operators and children of host
// tasks only (a container must not get a shell on a host by spawning into
// it); agent-script and Docker topics accept children of any task, so the
// seed's Docker build → hardware test hand-off works untouched.
//
// The leader refuses a spawn that no live subscriber would accept (403
// naming the rule); the picker gives a task only to a node that accepts
// it; the runner checks again before it starts an attempt.

// Kinds of topic: how a node runs its tasks (the executor's kinds, as the
// gossip and accept rules spell them).
const (
	KindHost   = string(executor.KindHost)
	KindAgent  = string(executor.KindAgent)
	KindDocker = string(executor.KindDocker)
)

// Accept rules.
const (
	AcceptOperator = "operator"
	AcceptTasks    = "tasks"
	acceptTopic    = "topic:"
)

// Kind is how this topic's tasks run: its Executor, or by default agent
// when it names an agent script, else host.
func (t Topic) Kind() string { return string(t.executorKind()) }

func (t Topic) executorKind() executor.Kind {
	switch {
	case t.Executor != "":
		return t.Executor
	case t.Agent != "":
		return executor.KindAgent
	}
	return executor.KindHost
}

// describe is what the topic's kind of executor needs and gives (a kind
// the registry does not know describes as nothing; validateTopics refuses
// it at start).
func (t Topic) describe() executor.Description {
	f, _ := executor.Default.Lookup(t.executorKind())
	return f.Describe
}

// DefaultAccept is the rule list of a kind of topic.
func DefaultAccept(kind string) []string {
	if kind == KindHost {
		return []string{AcceptOperator, KindHost + "-tasks"}
	}
	return []string{AcceptOperator, AcceptTasks}
}

// accept returns the topic's rules: its own, or its kind's default.
func (t Topic) accept() []string {
	if len(t.Accept) > 0 {
		return t.Accept
	}
	return DefaultAccept(t.Kind())
}

// validateAccept checks a rule list.
func validateAccept(topic string, rules []string) error {
	for _, r := range rules {
		switch {
		case r == AcceptOperator || r == AcceptTasks || r == KindHost+"-tasks" || r == KindAgent+"-tasks" || r == KindDocker+"-tasks":
		case strings.HasPrefix(r, acceptTopic) && len(r) > len(acceptTopic):
			if _, err := path.Match(r[len(acceptTopic):], "x"); err != nil {
				return fmt.Errorf("%w: --topic-accept %s=%s: bad pattern: %w", ErrConfig, topic, r, err)
			}
		default:
			return fmt.Errorf("%w: --topic-accept %s=%s: want operator, tasks, host-tasks, agent-tasks, docker-tasks or topic:GLOB", ErrConfig, topic, r)
		}
	}
	return nil
}

// origin is where a spawn comes from.
type origin struct {
	Operator    bool   // a root task
	ParentTopic string // else: the spawning task's topic
	ParentKind  string // and how it ran ("" unknown)
}

func (o origin) String() string {
	if o.Operator {
		return "an operator"
	}
	k := o.ParentKind
	if k == "" {
		k = "unknown-kind"
	}
	return fmt.Sprintf("a %s task of topic %s", k, o.ParentTopic)
}

// admits reports whether rules accept a spawn from o.
func admits(rules []string, o origin) bool {
	for _, r := range rules {
		switch {
		case r == AcceptOperator:
			if o.Operator {
				return true
			}
		case o.Operator:
		case r == AcceptTasks:
			return true
		case strings.HasSuffix(r, "-tasks"):
			if o.ParentKind != "" && r == o.ParentKind+"-tasks" {
				return true
			}
		case strings.HasPrefix(r, acceptTopic):
			if ok, _ := path.Match(r[len(acceptTopic):], o.ParentTopic); ok {
				return true
			}
		}
	}
	return false
}

// kindsMeta is what a node gossips of its topics (gossip.Meta.Kinds).
func kindsMeta(topics []Topic) map[string]string {
	if len(topics) == 0 {
		return nil
	}
	out := make(map[string]string, len(topics))
	for _, t := range topics {
		v := t.Kind()
		if len(t.Accept) > 0 && !slices.Equal(t.Accept, DefaultAccept(t.Kind())) {
			v += "=" + strings.Join(t.Accept, ",")
		}
		out[t.Name] = v
	}
	return out
}

// envAllowMeta is what a node gossips of its --topic-env-allow.
func envAllowMeta(topics []Topic) map[string][]string {
	var out map[string][]string
	for _, t := range topics {
		if len(t.EnvAllow) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[t.Name] = t.EnvAllow
		}
	}
	return out
}

// memberKind is how a member runs topic, and its rules; ok false when it
// does not say (an older binary, or not its topic).
func memberKind(m gossip.Member, topic string) (kind string, rules []string, ok bool) {
	v, ok := m.Meta.Kinds[topic]
	if !ok {
		return "", nil, false
	}
	kind, spec, custom := strings.Cut(v, "=")
	if custom {
		return kind, strings.Split(spec, ","), true
	}
	return kind, DefaultAccept(kind), true
}

// memberAccepts reports whether a member serving topic accepts a spawn
// from o. A member that gossips no kinds (an older binary) accepts what it
// always did.
func memberAccepts(m gossip.Member, topic string, o origin) bool {
	if m.Meta.Kinds == nil {
		return true
	}
	_, rules, ok := memberKind(m, topic)
	return ok && admits(rules, o)
}
