package raftfsm

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// Close shuts the heartbeat gate before it closes the log store: shut
// waits for a heartbeat raft is still handling (it may save a term), and a
// heartbeat after it is answered with an error, never handed to raft.
func TestHeartbeatGateWaitsForTheHeartbeatInProgress(t *testing.T) {
	nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	gate := &gatedTransport{NetworkTransport: nt}
	inside, release := make(chan struct{}), make(chan struct{})
	calls := 0
	gate.SetHeartbeatHandler(func(rpc raft.RPC) {
		calls++
		close(inside)
		<-release // raft saving the leader's term, slowly
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	leader, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	heartbeat := func() error {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("leader"), Addr: leader.EncodePeer("leader", leader.LocalAddr())}, Term: 2}
		return leader.AppendEntries("follower", nt.LocalAddr(), req, &raft.AppendEntriesResponse{})
	}
	first := make(chan error, 1)
	go func() { first <- heartbeat() }()
	<-inside
	shut := make(chan struct{})
	go func() {
		gate.shut()
		close(shut)
	}()
	select {
	case <-shut:
		t.Fatal("shut returned while a heartbeat was being handled")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	wait.For(t, 10*time.Second, "shut to return once the heartbeat was handled", func() (bool, string) {
		select {
		case <-shut:
			return true, ""
		default:
			return false, "shut still waits"
		}
	})
	var err1 error
	wait.For(t, 10*time.Second, "the first heartbeat's answer", func() (bool, string) {
		select {
		case err1 = <-first:
			return true, ""
		default:
			return false, "no answer yet"
		}
	})
	if err1 != nil {
		t.Errorf("heartbeat before the gate shut: got %v, want it answered", err1)
	}
	if err := heartbeat(); err == nil || err.Error() != raft.ErrRaftShutdown.Error() {
		t.Errorf("heartbeat after the gate shut: got %v, want %v", err, raft.ErrRaftShutdown)
	}
	if calls != 1 {
		t.Errorf("raft's handler ran %d times, want once (only before the gate shut)", calls)
	}
}
