package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

func holders(n *node.Node, h string) []string {
	var out []string
	n.FSM().Read(func(s *raftfsm.State, _ uint64) {
		if b := s.Blobs[h]; b != nil {
			out = append(out, b.Holders...)
		}
	})
	return out
}

func TestBlobsFetchReplicateAndCollect(t *testing.T) {
	clk := clock.NewManual(time.Now())
	const retention = 7 * 24 * time.Hour
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Clock, c.BlobRetention, c.BlobReplicas, c.JobHistory, c.LogRetention = clk, retention, 2, 10*24*time.Hour, 10*24*time.Hour
		c.JobTimeout, c.TaskTimeout = 90*24*time.Hour, 90*24*time.Hour
		c.Topics = []node.Topic{{Name: "build"}}
		c.Executor = executor.NewFake()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := m.Client(0).Spawn(ctx, api.SpawnRequest{Topic: "build", Args: []string{"hold"}})
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("firmware "), 100_000)
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:])
	info, err := m.Client(0).PutBlob(ctx, bytes.NewReader(content), url.Values{"name": {"fw.tar.gz"}, "job": {job.Job}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + hash; info.Ref != want || info.Size != int64(len(content)) {
		t.Fatalf("put: got %s %d, want %s %d", info.Ref, info.Size, want, len(content))
	}
	loose, err := m.Client(1).PutBlob(ctx, bytes.NewReader([]byte("no job holds me")), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Any node serves it by name in the job, fetching and verifying it first.
	for i := range m.Nodes {
		rc, err := m.Client(i).GetBlob(ctx, "fw.tar.gz", job.Job)
		if err != nil {
			t.Fatalf("get through node %d: %v", i, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("get through node %d: got %d bytes (%v), want %d identical bytes", i, len(got), err, len(content))
		}
	}
	m.WaitFor(10*time.Second, "every node recorded as a holder", func() (bool, string) {
		hs := holders(m.Nodes[0], hash)
		return len(hs) == 3, fmt.Sprintf("holders %v", hs)
	})
	looseHash := loose.Ref[len("sha256:"):]
	m.WaitFor(10*time.Second, "the loose blob replicated to a second node", func() (bool, string) {
		hs := holders(m.Nodes[0], looseHash)
		return len(hs) >= 2, fmt.Sprintf("holders %v", hs)
	})

	// An open job keeps its blob past retention; the loose one goes.
	clk.Advance(retention + time.Hour)
	m.WaitFor(20*time.Second, "the loose blob forgotten and deleted everywhere", func() (bool, string) {
		for i, n := range m.Nodes {
			if hs := holders(n, looseHash); len(hs) > 0 {
				return false, fmt.Sprintf("node %d's ledger still lists holders %v", i, hs)
			}
			if n.BlobStore().Has(blobs.Hash(looseHash)) {
				return false, fmt.Sprintf("node %d still has a copy", i)
			}
		}
		return true, ""
	})
	for i, n := range m.Nodes {
		if !n.BlobStore().Has(blobs.Hash(hash)) {
			t.Fatalf("node %d: the open job's blob is gone, want it kept", i)
		}
	}

	// Closed: kept for the retention period, then collected.
	if _, err := m.Client(0).Cancel(ctx, job.Job); err != nil {
		t.Fatal(err)
	}
	clk.Advance(retention - time.Hour)
	m.WaitFor(5*time.Second, "the cancel applied everywhere", func() (bool, string) {
		d, err := m.Client(2).Job(ctx, job.Job, 0, 0)
		return err == nil && d.Job.State == raftfsm.JobClosed, fmt.Sprint(err)
	})
	if hs := holders(m.Nodes[1], hash); len(hs) != 3 {
		t.Fatalf("before retention ran out: got holders %v, want all 3", hs)
	}
	rc, err := m.Client(1).GetBlob(ctx, "fw.tar.gz", job.Job)
	if err != nil {
		t.Fatalf("name before retention ran out: %v", err)
	}
	rc.Close()
	clk.Advance(2 * time.Hour)
	m.WaitFor(20*time.Second, "the closed job's blob collected everywhere", func() (bool, string) {
		for i, n := range m.Nodes {
			if n.BlobStore().Has(blobs.Hash(hash)) || len(holders(n, hash)) > 0 {
				return false, fmt.Sprintf("node %d still holds it", i)
			}
		}
		return true, ""
	})
	if _, err := m.Client(1).GetBlob(ctx, "fw.tar.gz", job.Job); !api.IsCode(err, api.CodeNotFound) {
		t.Errorf("name after retention: got %v, want not_found", err)
	}

	// After the job history period the job leaves the ledger, and every
	// node deletes its tasks' logs: the root's was sealed when its attempt
	// ended (its raw file and directory gone then) and kept since.
	var sealed string
	m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
		if tk := s.Tasks[job.Task]; tk != nil && len(tk.Logs) > 0 {
			sealed = tk.Logs[0].Hash
		}
	})
	copies := 0
	for _, n := range m.Nodes {
		if sealed != "" && n.BlobStore().Has(blobs.Hash(sealed)) {
			copies++
		}
	}
	if copies == 0 {
		t.Fatalf("before the history period: the root's sealed log %q is on no node", sealed)
	}
	clk.Advance(3 * 24 * time.Hour)
	m.WaitFor(20*time.Second, "the job forgotten and its logs deleted", func() (bool, string) {
		for i, n := range m.Nodes {
			if _, err := m.Client(i).Job(ctx, job.Job, 0, 0); !api.IsCode(err, api.CodeNotFound) {
				return false, fmt.Sprintf("node %d still knows the job (%v)", i, err)
			}
			if _, err := os.Stat(filepath.Join(n.DataDir(), "logs", job.Task)); err == nil {
				return false, fmt.Sprintf("node %d still has the task's log", i)
			}
			if n.BlobStore().Has(blobs.Hash(sealed)) {
				return false, fmt.Sprintf("node %d still has the task's sealed log", i)
			}
		}
		return true, ""
	})
}

func TestCorruptCopyIsRefetched(t *testing.T) {
	m := nodetest.Start(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	content := bytes.Repeat([]byte{0xAB}, 1<<20)
	info, err := m.Client(0).PutBlob(ctx, bytes.NewReader(content), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := blobs.ParseRef(info.Ref)
	m.WaitFor(10*time.Second, "the blob replicated to node1", func() (bool, string) {
		return m.Nodes[1].BlobStore().Has(h), "node1 lacks it"
	})
	// Damage node1's copy on disk behind its back: a fresh store on the
	// same directory has a cold verification cache.
	corruptOnDisk(t, m.Nodes[1].BlobStore(), h)
	rc, err := m.Client(1).GetBlob(ctx, info.Ref, "")
	if err != nil {
		t.Fatalf("get after corruption: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("get after corruption: got %d bytes (%v), want the %d good ones", len(got), err, len(content))
	}
}

// corruptOnDisk flips a byte of a stored copy and moves its mtime, so the
// store's verification cache no longer vouches for it.
func corruptOnDisk(t *testing.T, s *blobs.Store, h blobs.Hash) {
	t.Helper()
	p := filepath.Join(s.Dir(), "sha256", string(h)[:2], string(h))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("corrupt: %v", err)
	}
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestBlobPutIndex: a put answers with the index of its ledger record,
// through the leader and through followers; a node whose replica reached
// that index knows the blob, and a get through another node that passes it
// finds the blob at once.
func TestBlobPutIndex(t *testing.T) {
	m := nodetest.Start(t, 3, func(i int, c *node.Config) {
		c.Executor = executor.NewFake()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, f := m.Leader(), m.Follower()
	other := 3 - l - f
	tests := []struct {
		name     string
		put, get int
	}{
		{"put on the leader, get from a follower", l, f},
		{"put on a follower, get from the leader", f, l},
		{"put on a follower, get from the other follower", f, other},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content := []byte(fmt.Sprintf("blob %d for the index test", i))
			info, err := m.Client(tc.put).PutBlob(ctx, bytes.NewReader(content), nil)
			if err != nil {
				t.Fatal(err)
			}
			if info.Index == 0 {
				t.Fatalf("put through node %d: got index 0, want the record's index", tc.put)
			}
			rc, err := m.Client(tc.get).GetBlobAt(ctx, info.Ref, "", info.Index)
			if err != nil {
				t.Fatalf("get through node %d with index %d: %v", tc.get, info.Index, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			// The node answered once its replica reached the index, and
			// there the ledger names the putting node as a holder.
			if applied := m.Nodes[tc.get].FSM().Index(); applied < info.Index {
				t.Errorf("node %d answered at index %d, want at least %d", tc.get, applied, info.Index)
			}
			if hs, put := holders(m.Nodes[tc.get], info.Ref[len("sha256:"):]), m.Config(tc.put).Name; !slices.Contains(hs, put) {
				t.Errorf("node %d at index %d: got holders %v, want %s among them", tc.get, info.Index, hs, put)
			}
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("get through node %d: got %q (%v), want %q", tc.get, got, err, content)
			}
		})
	}
}

// TestLostCopyWithdrawsItsRecord: a copy that vanished from its holder's
// disk (a replaced disk, a hand clean-up, a name a crash took back) has its
// holder record withdrawn, so replication and fetchers stop counting on it.
func TestLostCopyWithdrawsItsRecord(t *testing.T) {
	m := nodetest.Start(t, 2, func(i int, c *node.Config) {
		c.BlobReplicas = 1 // no second copy: the record alone tells
		c.Executor = executor.NewFake()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := m.Client(0).PutBlob(ctx, bytes.NewReader([]byte("a copy about to vanish")), nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := info.Ref[len("sha256:"):]
	name0 := m.Config(0).Name
	if hs := holders(m.Nodes[0], hash); !slices.Equal(hs, []string{name0}) {
		t.Fatalf("holders after the put: got %v, want [%s]", hs, name0)
	}
	p := filepath.Join(m.Nodes[0].BlobStore().Dir(), "sha256", hash[:2], hash)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	// Any ledger change wakes the collector.
	if _, err := m.Client(1).PutBlob(ctx, bytes.NewReader([]byte("a ledger change")), nil); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(15*time.Second, "the lost copy's record withdrawn", func() (bool, string) {
		hs := holders(m.Nodes[1], hash)
		return len(hs) == 0, fmt.Sprintf("holders %v", hs)
	})
}

// TestCrashTornCopyWithdrawn: a node that crashed (Kill: no Close, so the
// store's marker stays) with a copy the disk then holds torn re-hashes
// what it wrote before the crash when it starts again, deletes the torn
// copy and withdraws its holder record, without anyone reading the blob.
func TestCrashTornCopyWithdrawn(t *testing.T) {
	configure := func(i int, c *node.Config) {
		c.BlobReplicas = 1 // no second copy: the record alone tells
		c.Executor = executor.NewFake()
	}
	m := nodetest.Start(t, 3, configure)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	victim := m.Follower()
	name := m.Config(victim).Name
	content := bytes.Repeat([]byte("torn by a crash "), 4096)
	info, err := m.Client(victim).PutBlob(ctx, bytes.NewReader(content), nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := info.Ref[len("sha256:"):]
	m.WaitFor(10*time.Second, "the put's record on every node", func() (bool, string) {
		for i := range m.Nodes {
			if hs := holders(m.Nodes[i], hash); !slices.Equal(hs, []string{name}) {
				return false, fmt.Sprintf("node %d: holders %v, want [%s]", i, hs, name)
			}
		}
		return true, ""
	})
	p := filepath.Join(m.Nodes[victim].BlobStore().Dir(), "sha256", hash[:2], hash)
	m.Nodes[victim].Kill()
	if err := os.WriteFile(p, make([]byte, len(content)), 0o600); err != nil { // the disk kept zeros
		t.Fatal(err)
	}
	cfg := m.Config(victim)
	configure(victim, &cfg)
	m.Restart(victim, cfg)
	other := (victim + 1) % 3
	m.WaitFor(20*time.Second, "the torn copy's record withdrawn", func() (bool, string) {
		hs := holders(m.Nodes[other], hash)
		return len(hs) == 0, fmt.Sprintf("holders %v", hs)
	})
	if m.Nodes[victim].BlobStore().Has(blobs.Hash(hash)) {
		t.Errorf("the torn copy is still on %s's disk, want it deleted", name)
	}
}

// TestWipedHolderRecordsWithdrawn: a holder that comes back with a wiped
// data dir has every record of its copies withdrawn (its first report is a
// reset), and replication brings each blob back to two real copies; no
// record is left naming a node without the copy.
func TestWipedHolderRecordsWithdrawn(t *testing.T) {
	configure := func(i int, c *node.Config) {
		c.BlobReplicas = 2
		c.Executor = executor.NewFake()
	}
	m := nodetest.Start(t, 3, configure)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hashes []string
	for k := range 6 {
		info, err := m.Client(k%3).PutBlob(ctx, bytes.NewReader([]byte(fmt.Sprint("a blob on a disk about to be wiped ", k))), nil)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, info.Ref[len("sha256:"):])
	}
	byName := map[string]*node.Node{}
	realCopies := func(at int) (bool, string) {
		for _, h := range hashes {
			hs := holders(m.Nodes[at], h)
			if len(hs) != 2 {
				return false, fmt.Sprintf("blob %s: holders %v, want 2", h[:12], hs)
			}
			for _, name := range hs {
				if !byName[name].BlobStore().Has(blobs.Hash(h)) {
					return false, fmt.Sprintf("blob %s: the ledger names %s, which has no copy", h[:12], name)
				}
			}
		}
		return true, ""
	}
	for _, n := range m.Nodes {
		byName[n.Name()] = n
	}
	m.WaitFor(20*time.Second, "every blob on two nodes", func() (bool, string) { return realCopies(0) })
	victim := m.Follower()
	held := 0
	for _, h := range hashes {
		if slices.Contains(holders(m.Nodes[victim], h), m.Nodes[victim].Name()) {
			held++
		}
	}
	if held == 0 {
		t.Fatalf("the follower %s holds none of the %d blobs: the test needs it to hold some", m.Nodes[victim].Name(), len(hashes))
	}
	cfg := m.Config(victim)
	configure(victim, &cfg)
	cfg.Peers = []string{m.Nodes[(victim+1)%3].GossipAddr()}
	logged := newRecords()
	cfg.Logger = slog.New(logged)
	m.Nodes[victim].Kill()
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	n := m.Restart(victim, cfg)
	byName[n.Name()] = n
	other := (victim + 1) % 3
	m.WaitFor(20*time.Second, fmt.Sprintf("the %d records of %s's wiped copies withdrawn and the blobs on two real copies again", held, n.Name()),
		func() (bool, string) { return realCopies(other) })
	if want := "blob store empty at start: the ledger's records of copies here are withdrawn"; len(logged.matching(want, "")) == 0 {
		t.Errorf("the wiped node's log has no %q: the records were not withdrawn by its reset", want)
	}
}
