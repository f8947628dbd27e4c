package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
	"github.com/ourci/ourci/scripts"
)

// runDemo starts a local three-node mesh in this process (127.0.0.1, free
// ports, a temporary data directory), runs the example pipeline of the seed
// on it and draws the task tree as it grows.
func runDemo(args []string) int {
	fs := newFlagSet("demo", "[--dir D] [--keep]")
	dir := fs.String("dir", "", "working directory (default: a new temporary one)")
	keep := fs.Bool("keep", false, "keep the directory (data dirs, logs, node log) afterwards")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
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
	if err := scripts.WriteTo(*dir); err != nil {
		return exitFor(err)
	}
	logf, err := os.Create(filepath.Join(*dir, "nodes.log"))
	if err != nil {
		return exitFor(err)
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, nil))
	exe, _ := os.Executable()
	secret := node.NewSecret()
	agent := filepath.Join(*dir, "example", "agents", "esp8266_agent.sh")

	specs := []struct {
		name   string
		topics []node.Topic
	}{
		{"node1", []node.Topic{{Name: "ourci/build/docker"}}},
		{"node2", []node.Topic{{Name: "ourci/build/docker"}}},
		{"node3", []node.Topic{{Name: "ourci/test/esp-12e", Agent: agent}}},
	}
	fmt.Printf("starting a 3-node mesh on 127.0.0.1 in %s\n", *dir)
	var nodes []*node.Node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].Close()
		}
	}()
	for _, s := range specs {
		cfg := node.Config{
			Name: s.name, DataDir: filepath.Join(*dir, s.name), Bind: "127.0.0.1:0", Raft: "127.0.0.1:0",
			HTTP: "127.0.0.1:0", Topics: s.topics, Slots: 4, Secret: secret, Logger: logger, Binary: exe,
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
		fmt.Printf("  %s  gossip %s  api %s  topics %s\n", s.name, n.GossipAddr(), n.URL(), topicList(s.topics))
	}
	ctx, stop := signalContext()
	defer stop()
	c := api.NewClient(nodes[1].URL(), secret.ClusterToken())
	if err := waitMesh(ctx, c, len(nodes)); err != nil {
		return exitFor(err)
	}
	root := filepath.Join(*dir, "example", "ci", "all.sh")
	res, err := c.Spawn(ctx, api.SpawnRequest{Topic: "ourci/build/docker", Args: []string{root}, Trigger: "demo", Key: "demo"})
	if err != nil {
		return exitFor(err)
	}
	fmt.Printf("\njob %s: root task %s runs %s\n\n", res.Job, res.Task, "example/ci/all.sh")
	start := time.Now()
	seen := map[string]raftfsm.TaskState{}
	final, err := c.WaitJob(ctx, res.Job, func(d api.JobDetail) { printChanges(os.Stdout, d, seen, start) })
	if err != nil {
		return exitFor(err)
	}
	fmt.Println()
	renderJob(os.Stdout, final)
	for _, t := range final.Tasks {
		if t.Topic == "ourci/test/esp-12e" {
			fmt.Printf("\noutput of hardware test %s on %s:\n", t.ID, t.Node)
			if rc, err := c.Log(ctx, t.ID, false); err == nil {
				io.Copy(os.Stdout, rc)
				rc.Close()
			}
			break
		}
	}
	fmt.Printf("\njob %s %s in %s\n", final.Job.ID, final.Job.Status, time.Since(start).Round(time.Millisecond))
	if *keep {
		fmt.Printf("kept %s (node log: nodes.log)\n", *dir)
	}
	if final.Job.Status != raftfsm.StatusPassed {
		return exitFailed
	}
	return exitOK
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
		if i := strings.LastIndex(args, "/example/"); i >= 0 {
			args = args[i+len("/example/"):]
		}
		fmt.Fprintf(w, "  %7s  %s %-9s%s  %s\n", time.Since(start).Round(time.Millisecond), t.ID, t.State, where, args)
	}
}
