package node

import (
	"errors"
	"testing"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/topic"
)

func TestAcceptRulesValidated(t *testing.T) {
	for _, bad := range [][]string{{"everyone"}, {"topic:"}, {"topic:[a"}} {
		if err := validateAccept("t", bad); !errors.Is(err, ErrConfig) {
			t.Errorf("validateAccept(%v): got %v, want a configuration error", bad, err)
		}
	}
	if err := validateAccept("t", []string{"operator", "tasks", "host-tasks", "agent-tasks", "docker-tasks", "topic:a/*"}); err != nil {
		t.Errorf("valid rules: got %v", err)
	}
}

// What a node gossips of its topics is what memberAccepts reads back.
func TestKindsMetaRoundTrip(t *testing.T) {
	topics := []Topic{{Name: "h"}, {Name: "a", Agent: "/opt/agent.sh"}, {Name: "d", Executor: executor.KindDocker}, {Name: "x", Accept: []string{"operator", "docker-tasks"}}}
	m := gossip.Member{Name: "n", Meta: gossip.Meta{Topics: []string{"a", "d", "h", "x"}, Kinds: kindsMeta(topics)}}
	b, err := gossip.EncodeMeta(m.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta, err = gossip.DecodeMeta(b); err != nil {
		t.Fatal(err)
	}
	fromDocker := topic.Origin{ParentTopic: "d", ParentKind: KindDocker}
	for _, c := range []struct {
		topic string
		want  bool
		kind  string
	}{{"h", false, KindHost}, {"a", true, KindAgent}, {"d", true, KindDocker}, {"x", true, KindHost}} {
		if got := memberAccepts(m, c.topic, fromDocker); got != c.want {
			t.Errorf("topic %s: accepts a container's child: got %v, want %v", c.topic, got, c.want)
		}
		if k, _, _ := memberKind(m, c.topic); k != c.kind {
			t.Errorf("topic %s: kind got %q, want %q", c.topic, k, c.kind)
		}
	}
	// An older binary gossips no kinds: it accepts what it always did.
	if !memberAccepts(gossip.Member{Meta: gossip.Meta{Topics: []string{"h"}}}, "h", fromDocker) {
		t.Errorf("a member without kinds: got refused, want accepted")
	}
}
