package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/raftfsm"
)

// raftGroup is the floor under every ledger write: a bare 3-node Raft group
// made exactly as a node makes its own (raftfsm.OpenRaft: raft-boltdb log
// with fsync, the mutual-TLS transport, the same timings and the
// ledger FSM), with nothing of OurCI on top: no HTTP, no dispatcher, no
// runner.
type raftGroup struct {
	rafts []*raftfsm.Raft
	fsms  []*raftfsm.FSM
}

func startRaftGroup(ctx context.Context, r *run, n int) (*raftGroup, error) {
	g := &raftGroup{}
	secret := make([]byte, 32)
	rand.Read(secret)
	var servers []raft.Server
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			g.close()
			return nil, err
		}
		id := "floor" + strconv.Itoa(i)
		fsm := raftfsm.NewFSM()
		rf, err := raftfsm.OpenRaft(raftfsm.RaftConfig{
			ID: id, Dir: filepath.Join(r.dir, "floor-raft", id), Listener: ln, Secret: secret,
			Timing: r.o.raftTiming(), LogOutput: io.Discard,
		}, fsm)
		if err != nil {
			ln.Close()
			g.close()
			return nil, err
		}
		g.rafts = append(g.rafts, rf)
		g.fsms = append(g.fsms, fsm)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: rf.Transport.LocalAddr(), Suffrage: raft.Voter})
	}
	if err := g.rafts[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		g.close()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for g.leader() == nil {
		if time.Now().After(deadline) {
			g.close()
			return nil, fmt.Errorf("%w: the floor Raft group elected no leader", errTimeout)
		}
		select {
		case <-ctx.Done():
			g.close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Every follower must hold the configuration before timings count.
	if err := g.leader().Barrier(10 * time.Second).Error(); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *raftGroup) leader() *raftfsm.Raft {
	for _, rf := range g.rafts {
		if rf.State() == raft.Leader {
			return rf
		}
	}
	return nil
}

func (g *raftGroup) close() {
	var wg sync.WaitGroup
	for _, rf := range g.rafts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rf.Close()
		}()
	}
	wg.Wait()
}

var floorSeq atomic.Int64

// spawnEntry is a ledger entry the size and kind of a real spawn: a new job
// with its root task, assigned.
func spawnEntry() []byte {
	b := make([]byte, 12)
	rand.Read(b)
	id := hex.EncodeToString(b)
	now := time.Now().UTC()
	c := raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{
		NewJob: &raftfsm.NewJob{Deadline: now.Add(time.Hour)}, Job: id[:12], Task: id[12:], Topic: "bench",
		Args:   []string{"echo \"$OURCI_TASK.$OURCI_ATTEMPT\" > '/tmp/ourci-bench-000000000/probe.fifo'"},
		Assign: "floor1", Key: "cluster:" + strconv.FormatInt(floorSeq.Add(1), 16), At: now,
	}}
	e, err := raftfsm.Encode(c)
	if err != nil {
		panic(err)
	}
	return e
}

// applyPair commits two entries one after the other through the leader and
// returns the time both took: each Apply returns once a quorum fsynced the
// entry and the leader's FSM applied it.
func (g *raftGroup) applyPair() (time.Duration, error) {
	l := g.leader()
	if l == nil {
		return 0, fmt.Errorf("the floor Raft group has no leader")
	}
	a, b := spawnEntry(), spawnEntry()
	t0 := time.Now()
	if err := l.Apply(a, 5*time.Second).Error(); err != nil {
		return 0, err
	}
	if err := l.Apply(b, 5*time.Second).Error(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// applyOne commits one entry and returns how long it took.
func (g *raftGroup) applyOne() (time.Duration, error) {
	l := g.leader()
	if l == nil {
		return 0, fmt.Errorf("the floor Raft group has no leader")
	}
	a := spawnEntry()
	t0 := time.Now()
	if err := l.Apply(a, 5*time.Second).Error(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// followerLag measures, for one entry, how long after the leader applied it
// a follower applied it too: the commit index reaches followers only with
// the next AppendEntries (at the latest after CommitTimeout..2*CommitTimeout
// when nothing else is sent).
func (g *raftGroup) followerLag(ctx context.Context) (time.Duration, error) {
	l := g.leader()
	if l == nil {
		return 0, fmt.Errorf("the floor Raft group has no leader")
	}
	var f *raftfsm.FSM
	for i, rf := range g.rafts {
		if rf != l {
			f = g.fsms[i]
			break
		}
	}
	fut := l.Apply(spawnEntry(), 5*time.Second)
	if err := fut.Error(); err != nil {
		return 0, err
	}
	tl := time.Now()
	idx := fut.Index()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		cur, ch := f.Watch()
		if cur >= idx {
			return time.Since(tl), nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return 0, fmt.Errorf("%w: follower did not apply", errTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
