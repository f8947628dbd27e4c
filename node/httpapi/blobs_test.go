package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// fakeBlobs is a store in memory; ensureErr and serveErrs script failures.
type fakeBlobs struct {
	mu        sync.Mutex
	m         map[blobs.Hash][]byte
	max       int64
	stageErr  error
	syncErr   error
	ensureErr error
	serveErrs []error // returned by Serve in turn before it serves
	lost      []blobs.Hash
	ensured   int
}

func newFakeBlobs() *fakeBlobs { return &fakeBlobs{m: map[blobs.Hash][]byte{}} }

func hashOf(b []byte) blobs.Hash {
	h := sha256.Sum256(b)
	return blobs.Hash(hex.EncodeToString(h[:]))
}

func (f *fakeBlobs) Name() string    { return "self" }
func (f *fakeBlobs) MaxBytes() int64 { return f.max }
func (f *fakeBlobs) Stage(body io.Reader, want blobs.Hash) (blobs.Hash, int64, error) {
	if f.stageErr != nil {
		return "", 0, f.stageErr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", 0, err
	}
	h := hashOf(b)
	if want != "" && want != h {
		return "", 0, fmt.Errorf("%w: got %s", blobs.ErrHashMismatch, h)
	}
	f.mu.Lock()
	f.m[h] = b
	f.mu.Unlock()
	return h, int64(len(b)), nil
}
func (f *fakeBlobs) Sync(blobs.Hash) error { return f.syncErr }
func (f *fakeBlobs) Has(h blobs.Hash) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.m[h]
	return ok
}
func (f *fakeBlobs) Ensure(context.Context, blobs.Hash) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured++
	return f.ensureErr
}
func (f *fakeBlobs) Serve(w http.ResponseWriter, r *http.Request, h blobs.Hash, name string) error {
	f.mu.Lock()
	if len(f.serveErrs) > 0 {
		err := f.serveErrs[0]
		f.serveErrs = f.serveErrs[1:]
		f.mu.Unlock()
		return err
	}
	b := f.m[h]
	f.mu.Unlock()
	w.Write(b)
	return nil
}
func (f *fakeBlobs) ServeToPeer(w http.ResponseWriter, r *http.Request, h blobs.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Write(f.m[h])
}
func (f *fakeBlobs) Lost(h blobs.Hash) { f.lost = append(f.lost, h) }
func (f *fakeBlobs) StoreError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return &NoSpaceError{Msg: "no space on self: free space"}
	}
	return err
}

// TestBlobPut: a put stores the body, then records the copy through the
// Writer (this node, the job, the name), answering the ledger index; what
// a quota, a closed job, a wrong hash or a full disk refuses is refused
// before anything is recorded, and a copy that never reached the disk is
// withdrawn.
func TestBlobPut(t *testing.T) {
	body := "firmware image"
	h := newHarness(t, fakeLead{leading: true})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Job: "j1", Task: "t1", Topic: "x", Args: []string{}, Assign: "n1", NewJob: &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)}}})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Job: "j2", Task: "t2", Topic: "x", Args: []string{}, NewJob: &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)}}})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdCloseJob, CloseJob: &raftfsm.CloseJob{Job: "j2", Reason: raftfsm.ReasonCancelled}})
	task := h.secret.TaskToken("t1", 1)
	fb := h.s.Blobs.(*fakeBlobs)

	rec := h.do(t, false, "PUT", "/v1/blobs?name=out/fw.bin", task, strings.NewReader(body))
	var info api.BlobInfo
	if err := jsonDecode(rec.Body.Bytes(), &info); rec.Code != 200 || err != nil || info.Ref != hashOf([]byte(body)).Ref() || info.Job != "j1" || rec.Header().Get(api.IndexHeader) == "" {
		t.Fatalf("a task's put: got %d %s, want 200 with its ref, job j1 and an index", rec.Code, rec.Body)
	}
	w := h.w.written()
	if len(w) != 1 || w[0].BlobAdded == nil || *w[0].BlobAdded != (raftfsm.BlobAdded{Hash: string(hashOf([]byte(body))), Size: int64(len(body)), Node: "self", Job: "j1", Name: "out/fw.bin"}) {
		t.Errorf("recorded: got %+v, want the copy on self, in j1 under its name", w)
	}

	cluster := h.secret.ClusterToken()
	cases := []struct {
		name, path string
		setup      func()
		want       int
		wantCode   string
	}{
		{"into a closed job", "/v1/blobs?job=j2", nil, 409, api.CodeJobClosed},
		{"into no job", "/v1/blobs?job=j9", nil, 404, api.CodeNotFound},
		{"a name without a job", "/v1/blobs?name=a", nil, 400, api.CodeBadRequest},
		{"a bad name", "/v1/blobs?job=j1&name=../x", nil, 400, api.CodeBadRequest},
		{"the wrong hash", "/v1/blobs?sha256=" + strings.Repeat("0", 64), nil, 400, api.CodeBadRequest},
		{"over --max-blob-bytes", "/v1/blobs", func() { fb.max = 4 }, 413, api.CodeQuota},
		{"a full disk", "/v1/blobs", func() { fb.max, fb.stageErr = 0, fmt.Errorf("write: %w", syscall.ENOSPC) }, 507, api.CodeNoSpace},
	}
	for _, c := range cases {
		before := len(h.w.written())
		if c.setup != nil {
			c.setup()
		}
		rec := h.do(t, false, "PUT", c.path, cluster, strings.NewReader(body))
		if rec.Code != c.want || errorCode(t, rec) != c.wantCode || len(h.w.written()) != before {
			t.Errorf("%s: got %d %s and %d written, want %d %s and nothing written", c.name, rec.Code, rec.Body, len(h.w.written())-before, c.want, c.wantCode)
		}
	}
	if len(h.jobs.quota) != 1 || h.jobs.quota[0] != "blob_bytes" {
		t.Errorf("quota refusals counted: got %v, want [blob_bytes]", h.jobs.quota)
	}

	fb.stageErr, fb.syncErr = nil, errors.New("fsync: input/output error")
	if rec := h.do(t, false, "PUT", "/v1/blobs", cluster, strings.NewReader("other")); rec.Code != 500 || len(fb.lost) != 1 || fb.lost[0] != hashOf([]byte("other")) {
		t.Errorf("a copy that could not be flushed: got %d, lost %v, want 500 and its record withdrawn", rec.Code, fb.lost)
	}
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestBlobGet: a task reads only the blobs its job refers to; BLOB_URL
// takes only a blob capability; a copy found corrupt is fetched again,
// once; a blob no holder can send is a 502, one the ledger does not know
// a 404.
func TestBlobGet(t *testing.T) {
	h := newHarness(t, fakeLead{leading: true})
	fb := h.s.Blobs.(*fakeBlobs)
	mine, other := []byte("mine"), []byte("other")
	fb.m[hashOf(mine)], fb.m[hashOf(other)] = mine, other
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{Job: "j1", Task: "t1", Topic: "x", Args: []string{}, Assign: "n1", NewJob: &raftfsm.NewJob{Deadline: time.Now().Add(time.Hour)}}})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(hashOf(mine)), Size: 4, Node: "self", Job: "j1", Name: "fw"}})
	h.apply(t, raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(hashOf(other)), Size: 5, Node: "self"}})
	task := h.secret.TaskToken("t1", 1)

	for _, c := range []struct {
		name, path, token string
		want              int
		body              string
	}{
		{"its job's blob by name", "/v1/blobs/fw", task, 200, "mine"},
		{"its job's blob by hash", "/v1/blobs/" + string(hashOf(mine)), task, 200, "mine"},
		{"another job's blob by hash", "/v1/blobs/" + string(hashOf(other)), task, 404, ""},
		{"another job's by ?job=", "/v1/blobs/fw?job=j9", task, 403, ""},
		{"the cluster token, any hash", "/v1/blobs/" + string(hashOf(other)), h.secret.ClusterToken(), 200, "other"},
		{"BLOB_URL with the capability", "/v1/blob/" + h.secret.BlobToken("j1", "t1", 1) + "/fw", "", 200, "mine"},
		{"BLOB_URL with the task token", "/v1/blob/" + task + "/fw", "", 403, ""},
		{"a capability as a bearer", "/v1/blobs/fw", h.secret.BlobToken("j1", "t1", 1), 403, ""},
	} {
		rec := h.do(t, false, "GET", c.path, c.token, nil)
		if rec.Code != c.want || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("%s: got %d %q, want %d %q", c.name, rec.Code, rec.Body, c.want, c.body)
		}
	}

	fb.serveErrs = []error{blobs.ErrCorrupt}
	before := fb.ensured
	if rec := h.do(t, false, "GET", "/v1/blobs/fw", task, nil); rec.Code != 200 || rec.Body.String() != "mine" || fb.ensured-before != 2 {
		t.Errorf("a corrupt copy: got %d %q after %d fetches, want the good copy after fetching again once", rec.Code, rec.Body, fb.ensured-before)
	}
	fb.serveErrs = []error{blobs.ErrCorrupt, blobs.ErrCorrupt}
	if rec := h.do(t, false, "GET", "/v1/blobs/fw", task, nil); rec.Code != 500 {
		t.Errorf("corrupt twice: got %d, want 500 (one retry)", rec.Code)
	}
	fb.serveErrs, fb.ensureErr = nil, errors.New("no holder answered")
	if rec := h.do(t, false, "GET", "/v1/blobs/fw", task, nil); rec.Code != 502 {
		t.Errorf("no holder: got %d %s, want 502", rec.Code, rec.Body)
	}
	fb.ensureErr = fmt.Errorf("%w: unknown", blobs.ErrNotFound)
	if rec := h.do(t, false, "GET", "/v1/blobs/fw", task, nil); rec.Code != 404 {
		t.Errorf("unknown to the ledger: got %d %s, want 404", rec.Code, rec.Body)
	}

	// The peer routes: a local copy only, and a pull.
	fb.ensureErr = nil
	cluster := h.secret.ClusterToken()
	if rec := h.do(t, true, "GET", "/v1/internal/blobs/"+string(hashOf(mine)), cluster, nil); rec.Code != 200 || rec.Body.String() != "mine" {
		t.Errorf("a peer's read of a local copy: got %d %q", rec.Code, rec.Body)
	}
	if rec := h.do(t, true, "GET", "/v1/internal/blobs/"+strings.Repeat("ab", 32), cluster, nil); rec.Code != 404 || fb.ensured == 0 {
		t.Errorf("a peer's read of no local copy: got %d, want 404", rec.Code)
	}
	if rec := h.do(t, true, "POST", "/v1/internal/blobs/nothex/pull", cluster, nil); rec.Code != 400 {
		t.Errorf("a pull of no hash: got %d, want 400", rec.Code)
	}
	if rec := h.do(t, true, "POST", "/v1/internal/blobs/"+string(hashOf(mine))+"/pull", cluster, nil); rec.Code != 200 {
		t.Errorf("a pull: got %d %s, want 200", rec.Code, rec.Body)
	}
}
