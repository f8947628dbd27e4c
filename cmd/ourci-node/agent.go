package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// agentName is the name the binary answers to as the seed's agent command
// (a link or a copy of ourci-node by that name).
const agentName = "ourci_agent"

// runAgent is `ourci-node agent -t TOPIC SCRIPT [join flags]`.
func runAgent(args []string) int { return agentMain("ourci-node agent", args) }

// agentMain is the seed's agent command line, `ourci_agent -t TOPIC SCRIPT`:
// a node that runs every task of TOPIC as `SCRIPT ARGS...`. It is join with
// --topic TOPIC=SCRIPT (agentJoinArgs); name is how messages call it.
func agentMain(name string, args []string) int {
	joinArgs, topic, script, err := agentJoinArgs(args, os.Getenv)
	if errors.Is(err, errAgentHelp) {
		agentUsage(os.Stdout, name)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n\n", name, err)
		agentUsage(os.Stderr, name)
		return exitUsage
	}
	if st, err := os.Stat(script); err != nil || st.IsDir() {
		what := "is a directory"
		if err != nil {
			what = "not found"
		}
		fmt.Fprintf(os.Stderr, "%s: agent script %s %s: give the path of the script that runs each task of %s (relative to the current directory)\n", name, script, what, topic)
		return exitUsage
	}
	return runJoin(joinArgs)
}

// errAgentHelp: the agent's help was asked for.
var errAgentHelp = errors.New("help")

// agentJoinArgs maps the agent's command line to join's: `-t TOPIC SCRIPT`
// (also -t=TOPIC, --t) becomes --topic TOPIC=SCRIPT, wherever it stands
// among join's flags, which pass through as they are; SCRIPT comes right
// after TOPIC. --slots is 1 unless the line gives --slots or getenv gives
// OURCI_SLOTS: a rig drives one board, one test at a time.
func agentJoinArgs(args []string, getenv func(string) string) (joinArgs []string, topic, script string, err error) {
	var rest []string
	slots := getenv("OURCI_SLOTS") != ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		flag, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") {
			flag = ""
		}
		switch flag {
		case "h", "help":
			return nil, "", "", errAgentHelp
		case "slots":
			slots = true
		case "t":
			if topic != "" {
				return nil, "", "", fmt.Errorf("give -t TOPIC once (more topics: --topic TOPIC[=SCRIPT])")
			}
			if !hasValue {
				if i+1 >= len(args) {
					return nil, "", "", fmt.Errorf("-t needs a TOPIC")
				}
				i++
				value = args[i]
			}
			if value == "" || strings.Contains(value, "=") {
				return nil, "", "", fmt.Errorf("-t %q: a topic is a non-empty name without '='", value)
			}
			topic = value
			if i+1 >= len(args) || args[i+1] == "--" || strings.HasPrefix(args[i+1], "-") || args[i+1] == "" {
				return nil, "", "", fmt.Errorf("give the agent script right after -t %s", topic)
			}
			i++
			script = args[i]
			if script == "docker" {
				return nil, "", "", fmt.Errorf("an agent script named docker reads as a Docker topic: write ./docker (or run ourci-node join --topic %s=docker)", topic)
			}
			continue
		}
		rest = append(rest, a)
	}
	if topic == "" {
		return nil, "", "", fmt.Errorf("give -t TOPIC SCRIPT")
	}
	joinArgs = append([]string{"--topic", topic + "=" + script}, rest...)
	if !slots {
		joinArgs = append([]string{"--slots", "1"}, joinArgs...)
	}
	return joinArgs, topic, script, nil
}

func agentUsage(w io.Writer, name string) {
	fmt.Fprintf(w, `usage: %s -t TOPIC SCRIPT [join flags]

Runs this machine's node, serving TOPIC: each of its tasks runs as
SCRIPT ARGS... with the task's environment. The seed's agent, as in
    ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh
It is ourci-node join --topic TOPIC=SCRIPT: every join flag and OURCI_*
variable applies (--peer, --secret-file, --name, --data-dir, ...: see
ourci-node join -h), but --slots is 1 unless --slots or OURCI_SLOTS say
otherwise (one board, one test at a time). The binary is this command when
run as ourci_agent (ln -s ourci-node ourci_agent) or as ourci-node agent.
`, name)
}
