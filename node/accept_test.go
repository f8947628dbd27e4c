package node

import (
	"strings"
	"testing"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/node/executor"
)

func TestAdmits(t *testing.T) {
	op := origin{Operator: true}
	fromDocker := origin{ParentTopic: "ourci/build/docker", ParentKind: KindDocker}
	fromHost := origin{ParentTopic: "ourci/build/host", ParentKind: KindHost}
	fromAgent := origin{ParentTopic: "ourci/test/esp-12e", ParentKind: KindAgent}
	unknown := origin{ParentTopic: "old", ParentKind: ""}
	cases := []struct {
		name  string
		rules []string
		o     origin
		want  bool
	}{
		{"host default: operators", DefaultAccept(KindHost), op, true},
		{"host default: a host task's child", DefaultAccept(KindHost), fromHost, true},
		{"host default: not a container's child", DefaultAccept(KindHost), fromDocker, false},
		{"host default: not an agent task's child", DefaultAccept(KindHost), fromAgent, false},
		{"host default: not a child of unknown kind", DefaultAccept(KindHost), unknown, false},
		{"agent default: a container's child (the seed's hand-off)", DefaultAccept(KindAgent), fromDocker, true},
		{"docker default: any task", DefaultAccept(KindDocker), unknown, true},
		{"docker default: operators", DefaultAccept(KindDocker), op, true},
		{"tasks only: no operator", []string{"tasks"}, op, false},
		{"topic glob", []string{"topic:ourci/build/*"}, fromDocker, true},
		{"topic glob, other topic", []string{"topic:ourci/build/*"}, fromAgent, false},
		{"docker-tasks", []string{"docker-tasks"}, fromDocker, true},
		{"operator only", []string{"operator"}, fromHost, false},
	}
	for _, c := range cases {
		if got := admits(c.rules, c.o); got != c.want {
			t.Errorf("%s: admits(%v, %v): got %v, want %v", c.name, c.rules, c.o, got, c.want)
		}
	}
}

func TestAcceptRulesValidated(t *testing.T) {
	for _, bad := range [][]string{{"everyone"}, {"topic:"}, {"topic:[a"}} {
		if err := validateAccept("t", bad); err == nil {
			t.Errorf("validateAccept(%v): got nil, want an error", bad)
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
	fromDocker := origin{ParentTopic: "d", ParentKind: KindDocker}
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

func TestEnvDenied(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"LD_PRELOAD", true}, {"LD_LIBRARY_PATH", true}, {"BASH_ENV", true}, {"ENV", true},
		{"BASH_FUNC_x%%", true}, {"x()", true}, {"PATH", true}, {"IFS", true}, {"SHELLOPTS", true},
		{"OURCI_TOKEN", true}, {"BLOB_URL", true}, {"GIT_SSH_COMMAND", true}, {"PYTHONPATH", true},
		{"BASE_SDK", false}, {"FW_BLOB", false}, {"CC", false}, {"MAKEFLAGS", false}, {"ENVIRONMENT", false}, {"PATHS", false},
	} {
		if got := envDenied(c.name); got != c.want {
			t.Errorf("envDenied(%q): got %v, want %v", c.name, got, c.want)
		}
	}
	if err := checkEnv([]string{"LD_PRELOAD=/tmp/x.so", "CC=gcc", "PATH=/tmp"}, []string{"PATH"}); err == nil || !strings.Contains(err.Error(), "LD_PRELOAD") || strings.Contains(err.Error(), "PATH,") {
		t.Errorf("checkEnv: got %v, want LD_PRELOAD refused and PATH allowed", err)
	}
}
