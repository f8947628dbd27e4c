package node

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/topic"
)

// What a node accepts per topic, and the policy itself, are node/topic's
// (Origin, Admits, DefaultAccept); here: what the node gossips of its
// topics and how it reads another member's.

// Kinds of topic and accept rules, as node's callers name them.
const (
	KindHost       = topic.KindHost
	KindAgent      = topic.KindAgent
	KindDocker     = topic.KindDocker
	AcceptOperator = topic.AcceptOperator
	AcceptTasks    = topic.AcceptTasks
)

// DefaultAccept is the rule list of a kind of topic.
func DefaultAccept(kind string) []string { return topic.DefaultAccept(kind) }

// validateAccept checks a rule list given for a topic.
func validateAccept(name string, rules []string) error {
	if err := topic.ValidateAccept(name, rules); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
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

// memberKind is how a member runs topic, and its rules (topic.MemberKind).
func memberKind(m gossip.Member, name string) (kind string, rules []string, ok bool) {
	return topic.MemberKind(m.Meta.Kinds, name)
}

// memberAccepts reports whether a member serving the topic name accepts a
// spawn from o (topic.MemberAccepts).
func memberAccepts(m gossip.Member, name string, o topic.Origin) bool {
	return topic.MemberAccepts(m.Meta.Kinds, name, o)
}
