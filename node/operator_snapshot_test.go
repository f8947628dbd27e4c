package node_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// ledgerOf returns a node's ledger hash and applied index.
func ledgerOf(nd *node.Node) (h [32]byte, idx uint64) {
	nd.FSM().Read(func(s *raftfsm.State, i uint64) { h, idx = s.Hash(), i })
	return h, idx
}

// saveSnapshot saves a snapshot file through c.
func saveSnapshot(t *testing.T, c *api.Client) []byte {
	t.Helper()
	rc, err := c.SaveSnapshot(testCtx(t))
	if err != nil {
		t.Fatalf("save a snapshot through %s: %v", c.Base, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("save a snapshot through %s: reading it: %v", c.Base, err)
	}
	return b
}

// TestOperatorSnapshotSaveRestore: a snapshot saved through a follower,
// restored after more work, puts every replica back on the saved ledger;
// the follower that relayed the restore holds it when it answers; the
// mesh then takes new work.
func TestOperatorSnapshotSaveRestore(t *testing.T) {
	m := startMesh(t, 3, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	var saved []string
	for range 2 {
		r := spawn(t, m.Client(0), "t", "true")
		checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
		waitSealed(t, m, r.Task) // the ledger is quiet once its log is sealed
		saved = append(saved, r.Job)
	}
	f := m.Follower()
	file := saveSnapshot(t, m.Client(f))
	hdr, want, err := raftfsm.ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("the saved file: got error %v, want a snapshot file", err)
	}
	if hdr.Jobs != 2 || hdr.Tasks != 2 || hdr.Index == 0 {
		t.Errorf("the saved file's header: got %d jobs, %d tasks, index %d; want 2, 2, > 0", hdr.Jobs, hdr.Tasks, hdr.Index)
	}
	if h, _ := ledgerOf(m.Nodes[m.Leader()]); h != want.Hash() {
		t.Errorf("the saved ledger: got hash %x, want the leader's %x", want.Hash(), h)
	}

	// Work after the save: a job, and a blob outside any job.
	after := spawn(t, m.Client(1), "t", "true")
	m.WaitJob(1, after.Job, waitLong)
	waitSealed(t, m, after.Task)
	blob, err := m.Client(2).PutBlob(ctx, strings.NewReader("put after the save"), nil)
	if err != nil {
		t.Fatalf("put a blob: %v", err)
	}
	before := make([]uint64, len(m.Nodes))
	for i, nd := range m.Nodes {
		// Replication's second copy too: its record, landing after the
		// restore, would name the blob again (its copy is real).
		m.WaitFor(waitLong, fmt.Sprintf("node%d to apply the blob's records, both copies", i), func() (bool, string) {
			_, idx := ledgerOf(nd)
			holders := 0
			nd.FSM().Read(func(s *raftfsm.State, _ uint64) {
				if b := s.Blobs[strings.TrimPrefix(blob.Ref, "sha256:")]; b != nil {
					holders = len(b.Holders)
				}
			})
			return idx >= blob.Index && holders >= 2, fmt.Sprintf("index %d, want %d; %d holders, want 2", idx, blob.Index, holders)
		})
		_, before[i] = ledgerOf(nd)
		nd.FSM().Read(func(s *raftfsm.State, _ uint64) {
			if s.Blobs[strings.TrimPrefix(blob.Ref, "sha256:")] == nil {
				t.Fatalf("node%d: no record of the blob %s just put", i, blob.Ref)
			}
		})
	}

	// Restore through another follower: it relays to the leader.
	r := m.Follower()
	res, err := m.Client(r).RestoreSnapshot(ctx, bytes.NewReader(file))
	if err != nil {
		t.Fatalf("restore through node%d: got error %v, want nil", r, err)
	}
	if res.SchemaVersion != 1 || res.SnapshotIndex != hdr.Index || res.SHA256 != hdr.SHA256 || res.Jobs != 2 || res.Index <= before[r] {
		t.Errorf("restore's answer: got %+v, want schema 1, snapshot index %d, sha256 %s, 2 jobs, index past %d", res, hdr.Index, hdr.SHA256, before[r])
	}
	// Read your writes: the relaying follower answered once its replica
	// reached the restore's index, so it holds the restored ledger.
	if h, idx := ledgerOf(m.Nodes[r]); h != want.Hash() || idx < res.Index {
		t.Errorf("node%d when the restore answered: got hash %x at index %d, want %x at %d or later", r, h[:6], idx, want.Hash(), res.Index)
	}
	if _, err := m.Client(r).Job(ctx, after.Job, 0, 0); !api.IsCode(err, api.CodeNotFound) {
		t.Errorf("node%d when the restore answered: job %s from after the save: got %v, want not found", r, after.Job, err)
	}
	for i, nd := range m.Nodes {
		m.WaitFor(waitLong, fmt.Sprintf("node%d to hold the restored ledger", i), func() (bool, string) {
			h, idx := ledgerOf(nd)
			return h == want.Hash() && idx >= res.Index, fmt.Sprintf("hash %x at index %d, want %x at %d", h[:6], idx, want.Hash(), res.Index)
		})
		if _, idx := ledgerOf(nd); idx < before[i] {
			t.Errorf("node%d's applied index: got %d after the restore, want at least the %d it had applied before", i, idx, before[i])
		}
		for _, id := range saved {
			checkJob(t, job(t, m.Client(i), id), "closed", "passed", "")
		}
		nd.FSM().Read(func(s *raftfsm.State, _ uint64) {
			if b := s.Blobs[strings.TrimPrefix(blob.Ref, "sha256:")]; b != nil {
				t.Errorf("node%d: the record of the blob put after the save: got %+v, want none", i, b)
			}
		})
	}

	// The mesh takes new work, and saves again.
	next := spawn(t, m.Client(r), "t", "true")
	checkJob(t, m.WaitJob(r, next.Job, waitLong), "closed", "passed", "")
	if h, _, err := raftfsm.ReadBackup(bytes.NewReader(saveSnapshot(t, m.Client(0)))); err != nil || h.Jobs != 3 {
		t.Errorf("a save after the restore: got %d jobs, %v; want 3 and no error", h.Jobs, err)
	}
}

// TestOperatorSnapshotRefused: a damaged file is refused with a clear
// error and changes nothing; only the cluster token saves or restores.
func TestOperatorSnapshotRefused(t *testing.T) {
	m, fakes := startFakes(t, 2, func(i int, c *node.Config) { c.Topics = topics("t") })
	ctx := testCtx(t)
	running := spawn(t, m.Client(0), "t", "sleep")
	proc, _ := procOf(t, fakes, running.Task)
	waitTask(t, m.Client(0), running.Job, running.Task, "running")
	file := saveSnapshot(t, m.Client(0))
	hash, _ := ledgerOf(m.Nodes[0])
	unchanged := func(what string) {
		t.Helper()
		for i, nd := range m.Nodes {
			m.WaitFor(waitLong, fmt.Sprintf("node%d to hold the ledger it held", i), func() (bool, string) {
				h, _ := ledgerOf(nd)
				return h == hash, fmt.Sprintf("hash %x, want %x", h[:6], hash[:6])
			})
		}
		select {
		case <-proc.Stopped():
			t.Errorf("%s: the running task was stopped, want it left running", what)
		default:
		}
	}

	// A body past leaderOnly's 1 MiB bound for JSON, under a right header:
	// read whole (to the hash, then the decoder), not cut off.
	big := make([]byte, 2<<20)
	rand.Read(big)
	sum := sha256.Sum256(big)
	bigFile := fmt.Sprintf(`{"format":"ourci-snapshot","version":1,"index":1,"compression":"gzip","size":%d,"sha256":"%s"}`+"\n", len(big), hex.EncodeToString(sum[:])) + string(big)
	flipped := bytes.Clone(file)
	flipped[len(flipped)/2] ^= 1
	nl := bytes.IndexByte(file, '\n')
	for _, tt := range []struct {
		name, file, want string
	}{
		{"empty", "", "the file is empty"},
		{"not a snapshot file", "hello\n", "not an ourci snapshot file"},
		{"truncated", string(file[:len(file)-20]), "truncated"},
		{"a byte flipped", string(flipped), "damaged"},
		{"a later version", strings.Replace(string(file[:nl]), `"version":1`, `"version":9`, 1) + string(file[nl:]), "version 9"},
		{"2 MiB that are not a ledger", bigFile, "does not decode"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range m.Nodes { // the leader, and a follower relaying
				_, err := m.Client(i).RestoreSnapshot(ctx, strings.NewReader(tt.file))
				var se *api.StatusError
				if !api.IsCode(err, api.CodeBadRequest) || !errors.As(err, &se) || se.HTTPStatus != http.StatusBadRequest {
					t.Fatalf("through node%d: got %v, want 400 %s", i, err, api.CodeBadRequest)
				}
				if !strings.Contains(se.Msg, tt.want) || !strings.Contains(se.Msg, "nothing was restored") {
					t.Errorf("through node%d: got %q, want it to say %q and that nothing was restored", i, se.Msg, tt.want)
				}
			}
			unchanged(tt.name)
		})
	}

	read, _ := m.Secret.OperatorToken(node.RoleRead, time.Time{})
	operate, _ := m.Secret.OperatorToken(node.RoleOperate, time.Time{})
	for _, tt := range []struct {
		name, token, code string
	}{
		{"a task token", m.Secret.TaskToken(running.Task, 1), api.CodeForbidden},
		{"a read token", read, api.CodeForbidden},
		{"an operate token", operate, api.CodeForbidden},
		{"no token", "", api.CodeUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i, nd := range m.Nodes {
				c := api.NewClient(nd.URL(), tt.token)
				if _, err := c.SaveSnapshot(ctx); !api.IsCode(err, tt.code) {
					t.Errorf("save on node%d: got %v, want %s", i, err, tt.code)
				}
				if _, err := c.RestoreSnapshot(ctx, bytes.NewReader(file)); !api.IsCode(err, tt.code) {
					t.Errorf("restore on node%d: got %v, want %s", i, err, tt.code)
				}
			}
			unchanged(tt.name)
		})
	}
	proc.Finish(0)
	checkJob(t, m.WaitJob(0, running.Job, waitLong), "closed", "passed", "")
}
