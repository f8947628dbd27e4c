package topic

import (
	"strings"
	"testing"
)

func TestAdmits(t *testing.T) {
	op := Origin{Operator: true}
	fromDocker := Origin{ParentTopic: "ourci/build/docker", ParentKind: KindDocker}
	fromHost := Origin{ParentTopic: "ourci/build/host", ParentKind: KindHost}
	fromAgent := Origin{ParentTopic: "ourci/test/esp-12e", ParentKind: KindAgent}
	unknown := Origin{ParentTopic: "old", ParentKind: ""}
	cases := []struct {
		name  string
		rules []string
		o     Origin
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
		if got := Admits(c.rules, c.o); got != c.want {
			t.Errorf("%s: Admits(%v, %v): got %v, want %v", c.name, c.rules, c.o, got, c.want)
		}
	}
}

func TestAcceptRulesValidated(t *testing.T) {
	for _, bad := range [][]string{{"everyone"}, {"topic:"}, {"topic:[a"}} {
		if err := ValidateAccept("t", bad); err == nil {
			t.Errorf("ValidateAccept(%v): got nil, want an error", bad)
		}
	}
	if err := ValidateAccept("t", []string{"operator", "tasks", "host-tasks", "agent-tasks", "docker-tasks", "topic:a/*"}); err != nil {
		t.Errorf("valid rules: got %v", err)
	}
}

func TestKindAndRules(t *testing.T) {
	for _, c := range []struct {
		topic Topic
		kind  string
		rules []string
	}{
		{Topic{Name: "h"}, KindHost, []string{AcceptOperator, "host-tasks"}},
		{Topic{Name: "a", Agent: "/opt/agent.sh"}, KindAgent, []string{AcceptOperator, AcceptTasks}},
		{Topic{Name: "d", Executor: "docker"}, KindDocker, []string{AcceptOperator, AcceptTasks}},
		{Topic{Name: "x", Accept: []string{"docker-tasks"}}, KindHost, []string{"docker-tasks"}},
	} {
		if got := c.topic.Kind(); got != c.kind {
			t.Errorf("%s: Kind: got %q, want %q", c.topic.Name, got, c.kind)
		}
		if got := c.topic.Rules(); strings.Join(got, ",") != strings.Join(c.rules, ",") {
			t.Errorf("%s: Rules: got %v, want %v", c.topic.Name, got, c.rules)
		}
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
		if got := EnvDenied(c.name); got != c.want {
			t.Errorf("EnvDenied(%q): got %v, want %v", c.name, got, c.want)
		}
	}
	if err := CheckEnv([]string{"LD_PRELOAD=/tmp/x.so", "CC=gcc", "PATH=/tmp"}, []string{"PATH"}); err == nil || !strings.Contains(err.Error(), "LD_PRELOAD") || strings.Contains(err.Error(), "PATH,") {
		t.Errorf("CheckEnv: got %v, want LD_PRELOAD refused and PATH allowed", err)
	}
}
