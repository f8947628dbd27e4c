package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ourci/ourci/scripts"
)

func TestAgentJoinArgs(t *testing.T) {
	const topic, script = "ourci/test/esp-12e", "ourci_esp8266_agent.sh"
	for _, tt := range []struct {
		name  string
		args  []string
		slots string // $OURCI_SLOTS
		want  []string
		err   string
	}{
		{"the seed's line", []string{"-t", topic, script},
			"", []string{"--slots", "1", "--topic", topic + "=" + script}, ""},
		{"join flags after", []string{"-t", topic, script, "--peer", "10.0.0.1:7946", "--secret-file", "s", "-v"},
			"", []string{"--slots", "1", "--topic", topic + "=" + script, "--peer", "10.0.0.1:7946", "--secret-file", "s", "-v"}, ""},
		{"join flags before", []string{"--name", "rig1", "-t", topic, script, "--wan"},
			"", []string{"--slots", "1", "--topic", topic + "=" + script, "--name", "rig1", "--wan"}, ""},
		{"-t=TOPIC", []string{"-t=" + topic, "./a.sh"}, "", []string{"--slots", "1", "--topic", topic + "=./a.sh"}, ""},
		{"--t TOPIC", []string{"--t", topic, "/opt/a.sh"}, "", []string{"--slots", "1", "--topic", topic + "=/opt/a.sh"}, ""},
		{"--slots given", []string{"-t", topic, script, "--slots", "3"}, "", []string{"--topic", topic + "=" + script, "--slots", "3"}, ""},
		{"--slots=N given", []string{"--slots=2", "-t", topic, script}, "", []string{"--topic", topic + "=" + script, "--slots=2"}, ""},
		{"OURCI_SLOTS", []string{"-t", topic, script}, "4", []string{"--topic", topic + "=" + script}, ""},
		{"more topics", []string{"-t", topic, script, "--topic", "other"},
			"", []string{"--slots", "1", "--topic", topic + "=" + script, "--topic", "other"}, ""},
		{"after --", []string{"-t", topic, script, "--", "x"}, "", []string{"--slots", "1", "--topic", topic + "=" + script, "--", "x"}, ""},
		{"no -t", []string{script}, "", nil, "give -t TOPIC SCRIPT"},
		{"no args", nil, "", nil, "give -t TOPIC SCRIPT"},
		{"no topic", []string{"-t"}, "", nil, "-t needs a TOPIC"},
		{"no script", []string{"-t", topic}, "", nil, "give the agent script right after -t " + topic},
		{"a flag for a script", []string{"-t", topic, "--peer", "p", script}, "", nil, "give the agent script right after -t"},
		{"empty script", []string{"-t", topic, ""}, "", nil, "give the agent script right after -t"},
		{"two -t", []string{"-t", topic, script, "-t", "b", script}, "", nil, "give -t TOPIC once"},
		{"topic with =", []string{"-t", "a=b", script}, "", nil, "without '='"},
		{"empty topic", []string{"-t=", script}, "", nil, "a topic is a non-empty name"},
		{"script named docker", []string{"-t", topic, "docker"}, "", nil, "write ./docker"},
		{"help", []string{"-t", topic, script, "-h"}, "", nil, errAgentHelp.Error()},
		{"--help", []string{"--help"}, "", nil, errAgentHelp.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, gotTopic, gotScript, err := agentJoinArgs(tt.args, func(k string) string {
				if k == "OURCI_SLOTS" {
					return tt.slots
				}
				return ""
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, error %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if _, s, _ := strings.Cut(tt.want[slices.Index(tt.want, "--topic")+1], "="); gotTopic == "" || gotScript != s {
				t.Errorf("got topic %q script %q, want the script %q", gotTopic, gotScript, s)
			}
		})
	}
}

// The binary answers to the name ourci_agent as the agent command; its
// refusals never start a node.
func TestRunAsAgent(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	os.Mkdir("adir", 0o755)
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{agentName, []string{"-h"}, exitOK},
		{agentName, nil, exitUsage},
		{agentName, []string{"-t", "ourci/test/esp-12e"}, exitUsage},
		{agentName, []string{"-t", "ourci/test/esp-12e", "missing.sh"}, exitUsage}, // no such script: said before joining
		{agentName, []string{"-t", "ourci/test/esp-12e", "adir"}, exitUsage},
		{"ourci-node", []string{"agent", "-h"}, exitOK},
		{"ourci-node", []string{"agent", "-t", "x"}, exitUsage},
		{"ourci-node", []string{"-t", "x", "a.sh"}, exitUsage}, // not the agent by another name
	} {
		if got := runAs(tt.name, tt.args); got != tt.want {
			t.Errorf("%s %q: exit %d, want %d", tt.name, tt.args, got, tt.want)
		}
	}
}

func TestFunctionsCommand(t *testing.T) {
	var out bytes.Buffer
	if got := functionsCmd(nil, &out); got != exitOK || !bytes.Equal(out.Bytes(), scripts.Functions()) {
		t.Errorf("no args: exit %d, %d bytes; want 0 and functions.sh on stdout", got, out.Len())
	}

	// The seed's layout: one line vendors a copy beside each directory
	// of scripts, where `. $(dirname $0)/ourci/scripts/functions.sh` looks.
	dir := t.TempDir()
	var files []string
	var args []string
	for _, p := range scripts.VendorPaths {
		f := filepath.Join(dir, filepath.FromSlash(p))
		files, args = append(files, f), append(args, "-o", f)
	}
	out.Reset()
	if got := functionsCmd(args, &out); got != exitOK || out.Len() != 0 {
		t.Errorf("%q: exit %d, stdout %q; want 0 and nothing", args, got, out.String())
	}
	for _, f := range files {
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, scripts.Functions()) {
			t.Errorf("%s: %v; want functions.sh", f, err)
		}
	}

	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"extra"}, exitUsage},
		{[]string{"-o"}, exitUsage},
		{[]string{"-o", filepath.Join(files[0], "below-a-file")}, exitError},
	} {
		if got := functionsCmd(tt.args, &out); got != tt.want {
			t.Errorf("%q: exit %d, want %d", tt.args, got, tt.want)
		}
	}
}
