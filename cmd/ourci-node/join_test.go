package main

import (
	"strings"
	"testing"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/executor"
)

func TestDockerLimitFlags(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags dockerFlags
		want  node.Topic // of topic d
		err   string
	}{
		{"defaults", dockerFlags{}, node.Topic{Name: "d", Executor: executor.KindDocker}, ""},
		{"set", dockerFlags{mem: []string{"d=2g"}, cpus: []string{"d=1.5"}, pids: []string{"d=100"}, network: []string{"d=host"}, user: []string{"d=0:0"}},
			node.Topic{Name: "d", Executor: executor.KindDocker, Memory: 2 << 30, CPUs: 1.5, Pids: 100, Network: "host", User: "0:0"}, ""},
		{"none", dockerFlags{mem: []string{"d=none"}, cpus: []string{"d=none"}, pids: []string{"d=none"}},
			node.Topic{Name: "d", Executor: executor.KindDocker, Memory: -1, CPUs: -1, Pids: -1}, ""},
		{"bad pids", dockerFlags{pids: []string{"d=0"}}, node.Topic{}, "--topic-pids d=0"},
		{"no topic", dockerFlags{pids: []string{"x=1"}}, node.Topic{}, "no --topic x"},
		{"host topic", dockerFlags{user: []string{"h=1:1"}}, node.Topic{}, "not a Docker topic"},
		{"empty network", dockerFlags{network: []string{"d="}}, node.Topic{}, "want TOPIC=NETWORK"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topics := []node.Topic{{Name: "h"}, {Name: "d", Executor: executor.KindDocker}}
			err := dockerLimits(topics, tt.flags)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := topics[1]
			if got.Memory != tt.want.Memory || got.CPUs != tt.want.CPUs || got.Pids != tt.want.Pids || got.Network != tt.want.Network || got.User != tt.want.User {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSecretEnvNames(t *testing.T) {
	got := strings.Join(secretEnvNames([]string{"t=A_KEY", "u=B", "bad"}), " ")
	if want := "OURCI_GITHUB_TOKEN OURCI_SMTP_PASSWORD OURCI_TOKEN A_KEY B"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
