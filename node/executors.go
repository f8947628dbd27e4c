package node

import (
	"context"
	"debug/elf"
	"fmt"
	"strconv"

	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/raftfsm"
)

// executorFor returns what runs a topic's tasks: the configured override
// (tests), a Docker executor for Docker topics, else host processes.
func (n *Node) executorFor(t Topic) Executor {
	if n.cfg.Executor != nil {
		return n.cfg.Executor
	}
	if !t.Docker {
		return executor.Host{}
	}
	n.dockerMu.Lock()
	defer n.dockerMu.Unlock()
	if d, ok := n.dockers[t.Name]; ok {
		return d
	}
	d := &executor.Docker{
		Node: n.cfg.Name, Mesh: n.cfg.Secret.MeshID(), Memory: t.Memory, NanoCPUs: int64(t.CPUs * 1e9), Pull: t.Pull, Network: t.Network,
	}
	if bin := n.binary(); bin != "" {
		d.Binds = append(d.Binds, bin) // ourci-node, on PATH inside the container
		if dynamic(bin) {
			n.log.Warn("ourci-node is dynamically linked: inside images without a matching libc, tasks cannot run spawn_task or blob_upload; build it with CGO_ENABLED=0", "binary", bin)
		}
	}
	n.dockers[t.Name] = d
	return d
}

// taskSpec fills in what an executor needs beyond the task's command.
func taskSpec(t *raftfsm.Task, topic Topic, s executor.Spec) (executor.Spec, error) {
	if topic.Docker {
		if t.Image == "" {
			return s, fmt.Errorf("topic %s runs tasks in Docker: spawn them with --image IMAGE", t.Topic)
		}
		s.Image = t.Image
		s.Labels = map[string]string{"ourci.job": t.Job, "ourci.task": t.ID, "ourci.attempt": strconv.Itoa(t.Attempt)}
	}
	return s, nil
}

// sweepContainers removes containers a previous life of this node left
// behind (it crashed while they ran).
func (n *Node) sweepContainers(ctx context.Context) {
	for _, t := range n.offer.Load().topics {
		if !t.Docker {
			continue
		}
		d, ok := n.executorFor(t).(*executor.Docker)
		if !ok {
			return
		}
		removed, err := d.Sweep(ctx)
		if err != nil {
			n.log.Warn("docker: sweeping leftover containers", "err", err)
		} else if removed > 0 {
			n.log.Info("docker: removed leftover containers of a previous run", "containers", removed)
		}
		return // one sweep covers every topic: containers carry the node's label
	}
}

// dynamic reports whether the executable at path needs a dynamic loader.
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}
