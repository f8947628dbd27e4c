package main

import (
	"fmt"
	"os"
	"path/filepath"
)

type command struct {
	name    string
	summary string
	run     func(args []string) int
}

func commands() []command {
	return []command{
		{"join", "run this machine's node (starts a new mesh without --peer)", runJoin},
		{"agent", "-t TOPIC SCRIPT [join flags]: join as the seed's agent, SCRIPT runs each task (also run as ourci_agent)", runAgent},
		{"demo", "start a local 3-node mesh and run the example pipeline to the end", runDemo},
		{"keygen", "print a new cluster secret", runKeygen},
		{"keyring", "rotate the gossip key on every member: generate, install, use, remove, list", runKeyring},
		{"tls", "make the mesh CA (tls ca) and node or client certificates (tls cert NAME)", runTLS},
		{"token", "print the full-access API token derived from the cluster secret; token create --role read|operate|metrics makes a narrower one", runToken},
		{"spawn", "add a task: a child of the current task, or the root of a new job", runSpawn},
		{"status", "show the mesh and recent jobs, or one job's task tree", runStatus},
		{"logs", "print (or follow) a task's output", runLogs},
		{"cancel", "close an open job as cancelled, stopping what still runs", runCancel},
		{"approve", "let a held job (a pull request from a fork) run", runApprove},
		{"fail", "--infra REASON, inside a task: end it as an infrastructure failure (retried on another node), not a failure of the code", runFail},
		{"rig", "list | quarantine NODE TOPIC --reason TEXT | release NODE TOPIC: a node's health on a topic", runRig},
		{"drain", "take a node out of the mesh gracefully: running tasks finish, then it leaves", runDrain},
		{"blob", "put FILE [--name NAME] | get REF [-o FILE]: content-addressed artifacts", runBlob},
		{"version", "print this binary's version and the ledger schema it applies", runVersion},
		{"functions", "print functions.sh (spawn_task, blob_upload) or vendor it with -o FILE", runFunctions},
		{"bench", "measure dispatch, throughput, failover, gossip, blobs and the ledger against the floor", runBench},
		{"operator", "backups and disaster recovery: snapshot save|restore FILE, raft recover (docs/OPERATIONS.md)", runOperator},
	}
}

func main() {
	os.Exit(runAs(filepath.Base(os.Args[0]), os.Args[1:]))
}

// runAs runs the command line of the binary invoked under name: named
// ourci_agent (a link or a copy), it is the agent command.
func runAs(name string, args []string) int {
	if name == agentName {
		return agentMain(agentName, args)
	}
	return run(args)
}

func run(args []string) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "ourci-node: unknown command %q\n\n", args[0])
	usage()
	return exitUsage
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ourci-node COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nrun 'ourci-node COMMAND -h' for a command's flags")
}
