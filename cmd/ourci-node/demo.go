package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
	"github.com/ourci/ourci/scripts"
)

// runDemo starts a local three-node mesh in this process (127.0.0.1, free
// ports, a temporary data directory) and runs the seed's pipeline on it:
// its scripts as printed (scripts/example/seed), in a local git repository
// made from the stand-in tree, on host topics (no Docker), printing each
// task's state changes and then the task tree.
func runDemo(args []string) int { return demo(args, os.Stdout) }

// demo is runDemo printing to w.
func demo(args []string, w io.Writer) int {
	fs := newFlagSet("demo", "[--dir D] [--keep]")
	dir := fs.String("dir", "", "working directory (default: a new temporary one)")
	keep := fs.Bool("keep", false, "keep the directory (repository, data dirs, logs, node log) afterwards")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	var missing []string
	for _, tool := range []string{"sh", "git", "make", "curl", "tar", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "ourci-node demo: the seed's scripts need %s, not found on PATH: install them (Debian: apt-get install %s)\n",
			strings.Join(missing, ", "), strings.Join(missing, " "))
		return exitError
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "ourci-demo-")
		if err != nil {
			return exitFor(err)
		}
		*dir = d
		if !*keep {
			defer os.RemoveAll(d)
		}
	}
	repo, agent, err := demoMachines(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node demo:", pathError(err))
		return exitError
	}
	logf, err := os.Create(filepath.Join(*dir, "nodes.log"))
	if err != nil {
		return exitFor(err)
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, nil))
	exe, _ := os.Executable()
	secret := node.NewSecret()

	specs := []struct {
		name   string
		topics []node.Topic
		slots  int
	}{
		{"node1", []node.Topic{{Name: "ourci/build/docker"}}, 4},
		{"node2", []node.Topic{{Name: "ourci/build/docker"}}, 4},
		// ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh: one slot.
		{"node3", []node.Topic{{Name: "ourci/test/esp-12e", Agent: agent}}, 1},
	}
	fmt.Fprintf(w, "the seed's repository: %s (git, branch master)\n", repo)
	fmt.Fprintf(w, "starting a 3-node mesh on 127.0.0.1 in %s\n", *dir)
	var nodes []*node.Node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].Close()
		}
	}()
	for _, s := range specs {
		cfg := node.Config{
			Name: s.name, DataDir: filepath.Join(*dir, s.name), Bind: "127.0.0.1:0", Raft: "127.0.0.1:0",
			HTTP: "127.0.0.1:0", Topics: s.topics, Slots: s.slots, Secret: secret, Logger: logger, Binary: exe,
			JobTimeout: 5 * time.Minute,
		}
		if len(nodes) > 0 {
			cfg.Peers = []string{nodes[0].GossipAddr()}
		}
		n, err := node.Start(cfg)
		if err != nil {
			return exitFor(err)
		}
		nodes = append(nodes, n)
		fmt.Fprintf(w, "  %s  gossip %s  api %s  topics %s\n", s.name, n.GossipAddr(), n.URL(), topicList(s.topics))
	}
	fmt.Fprintf(w, "  (node3 is the seed's rig: ourci_agent -t ourci/test/esp-12e %s, in %s)\n", scripts.AgentScript, filepath.Dir(agent))
	ctx, stop := signalContext()
	defer stop()
	c := api.NewClient(nodes[1].URL(), secret.ClusterToken())
	if err := waitMesh(ctx, c, len(nodes)); err != nil {
		return exitFor(err)
	}
	res, err := c.Spawn(ctx, api.SpawnRequest{
		Topic: "ourci/build/docker", Args: []string{"ci/all.sh"}, Trigger: "demo", Key: "demo",
		Source: raftfsm.Source{Repo: repo, SHA: "master"},
	})
	if err != nil {
		return exitFor(err)
	}
	fmt.Fprintf(w, "\njob %s: root task %s runs ci/all.sh in a checkout of master\n\n", res.Job, res.Task)
	start := time.Now()
	seen := map[string]raftfsm.TaskState{}
	final, err := c.WaitJob(ctx, res.Job, func(d api.JobDetail) { printChanges(w, d, seen, start) })
	if err != nil {
		return exitFor(err)
	}
	fmt.Fprintln(w)
	renderJob(w, final)
	for _, t := range final.Tasks {
		if t.Topic == "ourci/test/esp-12e" {
			fmt.Fprintf(w, "\noutput of hardware test %s on %s (ourci_esp8266_agent.sh %s):\n", t.ID, t.Node, strings.Join(t.Args, " "))
			if rc, err := c.Log(ctx, t.ID, false); err == nil {
				io.Copy(w, rc)
				rc.Close()
			}
			break
		}
	}
	fmt.Fprintf(w, "\njob %s %s in %s\n", final.Job.ID, final.Job.Status, time.Since(start).Round(time.Millisecond))
	if *keep {
		fmt.Fprintf(w, "kept %s (node log: nodes.log)\n", *dir)
	}
	if final.Job.Status != raftfsm.StatusPassed {
		return exitFailed
	}
	return exitOK
}

// demoMachines lays out what the demo's machines hold, in dir: the seed's
// repository (dir/dev, committed on master), the rig with the agent script
// and the simulated board (dir/shepetovka), the build machines' commands
// (dir/build-bin). The nodes run in this process, so the commands of both
// kinds of machine go on its PATH, which the nodes give their tasks. It
// returns the repository and the agent script.
func demoMachines(dir string) (repo, agent string, err error) {
	repo = filepath.Join(dir, "dev")
	if err := scripts.WriteSeedRepo(repo); err != nil {
		return "", "", err
	}
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=OurCI demo", "GIT_AUTHOR_EMAIL=demo@ourci.invalid",
		"GIT_COMMITTER_NAME=OurCI demo", "GIT_COMMITTER_EMAIL=demo@ourci.invalid")
	for _, args := range [][]string{{"init", "-q", "-b", "master"}, {"add", "-A"}, {"commit", "-q", "-m", "the seed's repository, a stand-in"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = repo, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), repo, err, strings.TrimSpace(string(out)))
		}
	}
	rig := filepath.Join(dir, "shepetovka")
	if agent, err = scripts.WriteRig(rig); err != nil {
		return "", "", err
	}
	buildBin := filepath.Join(dir, "build-bin")
	if err := scripts.WriteSub(scripts.BuildBinDir, buildBin); err != nil {
		return "", "", err
	}
	path := strings.Join([]string{buildBin, filepath.Join(rig, "bin"), os.Getenv("PATH")}, string(os.PathListSeparator))
	if err := os.Setenv("PATH", path); err != nil {
		return "", "", err
	}
	return repo, agent, nil
}

func topicList(ts []node.Topic) string {
	var s []string
	for _, t := range ts {
		if t.Agent != "" {
			s = append(s, t.Name+"="+filepath.Base(t.Agent))
		} else {
			s = append(s, t.Name)
		}
	}
	return strings.Join(s, " ")
}

// waitMesh waits until the node sees n members and a leader.
func waitMesh(ctx context.Context, c *api.Client, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Leader != "" && len(st.Members) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the mesh did not form within 30s (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// printChanges prints one line per task state change since the last call.
func printChanges(w io.Writer, d api.JobDetail, seen map[string]raftfsm.TaskState, start time.Time) {
	for _, t := range d.Tasks {
		if seen[t.ID] == t.State {
			continue
		}
		seen[t.ID] = t.State
		where := ""
		if t.Node != "" {
			where = " on " + t.Node
		}
		args := strings.Join(t.Args, " ")
		fmt.Fprintf(w, "  %7s  %s %-9s%s  %s\n", time.Since(start).Round(time.Millisecond), t.ID, t.State, where, args)
	}
}
