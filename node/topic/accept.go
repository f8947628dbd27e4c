package topic

import (
	"fmt"
	"path"
	"strings"

	"github.com/ourci/ourci/raftfsm"
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

// Accept rules.
const (
	AcceptOperator = "operator"
	AcceptTasks    = "tasks"
	acceptTopic    = "topic:"
)

// DefaultAccept is the rule list of a kind of topic.
func DefaultAccept(kind string) []string {
	if kind == KindHost {
		return []string{AcceptOperator, KindHost + "-tasks"}
	}
	return []string{AcceptOperator, AcceptTasks}
}

// ValidateAccept checks a rule list given for topic.
func ValidateAccept(topic string, rules []string) error {
	for _, r := range rules {
		switch {
		case r == AcceptOperator || r == AcceptTasks || r == KindHost+"-tasks" || r == KindAgent+"-tasks" || r == KindDocker+"-tasks":
		case strings.HasPrefix(r, acceptTopic) && len(r) > len(acceptTopic):
			if _, err := path.Match(r[len(acceptTopic):], "x"); err != nil {
				return fmt.Errorf("--topic-accept %s=%s: bad pattern: %w", topic, r, err)
			}
		default:
			return fmt.Errorf("--topic-accept %s=%s: want operator, tasks, host-tasks, agent-tasks, docker-tasks or topic:GLOB", topic, r)
		}
	}
	return nil
}

// Origin is where a spawn comes from.
type Origin struct {
	Operator    bool   // a root task
	ParentTopic string // else: the spawning task's topic
	ParentKind  string // and how it ran ("" unknown)
}

func (o Origin) String() string {
	if o.Operator {
		return "an operator"
	}
	k := o.ParentKind
	if k == "" {
		k = "unknown-kind"
	}
	return fmt.Sprintf("a %s task of topic %s", k, o.ParentTopic)
}

// Admits reports whether rules accept a spawn from o.
func Admits(rules []string, o Origin) bool {
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

// OriginOf is where a task's spawn came from, as the ledger shows it.
func OriginOf(s *raftfsm.State, t *raftfsm.Task) Origin {
	if t.Parent == "" {
		return Origin{Operator: true}
	}
	o := Origin{ParentKind: t.ParentKind}
	if p := s.Tasks[t.Parent]; p != nil {
		o.ParentTopic = p.Topic
	}
	return o
}

// MemberKind is how a member runs topic name, and its rules, from what it
// gossips of its topics (gossip.Meta.Kinds: KIND or KIND=RULE,...); ok
// false when it does not say (an older binary, or not its topic).
func MemberKind(kinds map[string]string, name string) (kind string, rules []string, ok bool) {
	v, ok := kinds[name]
	if !ok {
		return "", nil, false
	}
	kind, spec, custom := strings.Cut(v, "=")
	if custom {
		return kind, strings.Split(spec, ","), true
	}
	return kind, DefaultAccept(kind), true
}

// MemberAccepts reports whether a member gossiping kinds accepts a spawn
// from o on topic name. A member that gossips no kinds (an older binary)
// accepts what it always did.
func MemberAccepts(kinds map[string]string, name string, o Origin) bool {
	if kinds == nil {
		return true
	}
	_, rules, ok := MemberKind(kinds, name)
	return ok && Admits(rules, o)
}
