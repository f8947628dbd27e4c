package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	// changes counts the proposals that met a leadership change and were
	// made again (see commit); the report notes it.
	changes atomic.Int64
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
	// Every follower must hold the configuration before timings count.
	if _, err := g.commit(ctx); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// leaderWait bounds how long the floor waits for the group to elect a
// leader, at the start and after each leadership change. Elections take
// well under a second (LAN timings) even on a loaded machine; 30 s means
// the group is broken.
const leaderWait = 30 * time.Second

// Backoff between proposals after a leadership change: a leader that is
// handing over still answers "transfer in progress" at once.
const (
	firstBackoff = 5 * time.Millisecond
	maxBackoff   = 200 * time.Millisecond
)

// waitLeader waits until a member leads and returns it.
func (g *raftGroup) waitLeader(ctx context.Context) (*raftfsm.Raft, error) {
	deadline := time.NewTimer(scaled(leaderWait))
	defer deadline.Stop()
	for {
		if l := g.leader(); l != nil {
			return l, nil
		}
		select {
		case <-deadline.C:
			return nil, fmt.Errorf("%w: the floor Raft group has had no leader for %s", errTimeout, scaled(leaderWait))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
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

// leadershipChanged reports whether err says only that the entry met a
// leadership change (it may or may not have committed): the caller waits
// for the next leader and proposes it again.
func leadershipChanged(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// commit applies entries one after the other through the leader and
// returns the time they took together: each Apply returns once a quorum
// fsynced the entry and the leader's FSM applied it. No entries: a
// Barrier (every earlier entry applied on the leader).
//
// A leadership change on the way (the machine is loaded and a heartbeat
// came late) does not end the run and is not measured: commit waits for
// the next leader, proposes the same entries again (each spawn carries its
// own idempotency key, so one that did commit before the change is not
// applied twice) and starts the clock anew, after a short backoff (a
// leader handing over answers at once). Every other error is returned as
// it is, and so is a group that stays without a leader, or commits
// nothing, for leaderWait.
func (g *raftGroup) commit(ctx context.Context, entries ...[]byte) (time.Duration, error) {
	deadline := time.Now().Add(scaled(leaderWait))
	backoff := firstBackoff
	for {
		l, err := g.waitLeader(ctx)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		err = nil
		if len(entries) == 0 {
			err = l.Barrier(10 * time.Second).Error()
		}
		for _, e := range entries {
			if err = l.Apply(e, 5*time.Second).Error(); err != nil {
				break
			}
		}
		d := time.Since(t0)
		switch {
		case err == nil:
			return d, nil
		case !leadershipChanged(err):
			return 0, err
		case time.Now().After(deadline):
			return 0, fmt.Errorf("%w: the floor Raft group committed nothing for %s across leadership changes: %w", errTimeout, scaled(leaderWait), err)
		}
		g.changes.Add(1)
		if err := sleep(ctx, backoff); err != nil {
			return 0, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// followerLag measures, for one entry, how long after the leader applied it
// a follower applied it too: the commit index reaches followers only with
// the next AppendEntries (at the latest after CommitTimeout..2*CommitTimeout
// when nothing else is sent).
func (g *raftGroup) followerLag(ctx context.Context) (time.Duration, error) {
	deadline := time.Now().Add(scaled(leaderWait))
	backoff := firstBackoff
	for {
		l, err := g.waitLeader(ctx)
		if err != nil {
			return 0, err
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
			if leadershipChanged(err) && time.Now().Before(deadline) {
				// Not a sample: measure again under the next leader
				// (the entry, committed or not, is a spawn of its own).
				g.changes.Add(1)
				if err := sleep(ctx, backoff); err != nil {
					return 0, err
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
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
}
