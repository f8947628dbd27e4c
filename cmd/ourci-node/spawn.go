package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

func runSpawn(args []string) int {
	fs := newFlagSet("spawn", "-t TOPIC [flags] -- ARGS...")
	var cf clientFlags
	cf.register(fs)
	var (
		topic      = fs.String("t", "", "topic to publish the task to (required)")
		image      = fs.String("image", "", "Docker image for docker topics")
		imageFirst = fs.Bool("image-first", false, "the seed's form (spawn_task -t TOPIC ARG...): the first argument is the image if TOPIC runs in Docker, else an argument (\"-\" or \"\": no image, dropped)")
		timeout    = fs.Duration("timeout", 0, "task timeout (default: the topic's on the running node)")
		jobTimeout = fs.Duration("job-timeout", 0, "new jobs: deadline (default: the node's --job-timeout)")
		wait       = fs.Bool("wait", false, "follow the job to its end; exit 0 only if it passed")
		asJSON     = fs.Bool("json", false, "print {schema_version, job, task} as JSON")
		repo       = fs.String("repo", "", "new jobs: repository URL; every task gets a checkout of it")
		rev        = fs.String("rev", "", "new jobs: commit, branch or tag of --repo (default HEAD); the leader pins it to a commit")
		sha        = fs.String("sha", "", "new jobs: commit (same as --rev with a full SHA)")
		branch     = fs.String("branch", "", "new jobs: branch")
		pr         = fs.Int("pr", 0, "new jobs: pull request number")
		priority   = fs.Int("priority", 0, "queue order, -1000 to 1000: a waiting task of higher priority gets the next free slot first (then the older job's)")
		envs       listFlag
	)
	fs.StringVar(topic, "topic", "", "same as -t")
	fs.Var(&envs, "env", "K=V for the task's environment (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if *topic == "" {
		fmt.Fprintln(os.Stderr, "ourci-node spawn: -t TOPIC is required")
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		return exitFor(err)
	}
	if *rev != "" && *sha == "" {
		*sha = *rev // the leader resolves a branch or tag name to its commit
	}
	key := make([]byte, 12)
	rand.Read(key)
	req := api.SpawnRequest{
		Topic: *topic, Image: *image, Args: pos, Env: envs, Timeout: api.Duration(*timeout), ImageFirst: *imageFirst,
		JobTimeout: api.Duration(*jobTimeout), Key: hex.EncodeToString(key), Priority: *priority,
		Source:  raftfsm.Source{Repo: *repo, SHA: *sha, Branch: *branch, PR: *pr},
		Trigger: "cli",
	}
	if req.Args == nil {
		req.Args = []string{}
	}
	ctx, stop := signalContext()
	defer stop()
	res, err := c.Spawn(ctx, req)
	if err != nil {
		return exitFor(err)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Println(res.Task)
	}
	if !*wait {
		return exitOK
	}
	start := time.Now()
	d, err := c.WaitJob(ctx, res.Job, nil)
	if err != nil {
		return exitFor(err)
	}
	if !*asJSON {
		fmt.Fprintf(os.Stderr, "job %s %s after %s\n", d.Job.ID, d.Job.Status, time.Since(start).Round(time.Millisecond))
	}
	if d.Job.Status != raftfsm.StatusPassed {
		return exitFailed
	}
	return exitOK
}
