package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/raftfsm"
)

// Blobs: PUT /v1/blobs, GET and HEAD /v1/blobs/{ref...} (a token),
// /v1/blob/{token}/{ref...} (a task's BLOB_URL capability), and on the
// peer port GET /v1/internal/blobs/{hash} (a local copy, never fetched)
// and POST /v1/internal/blobs/{hash}/pull (replication: fetch a copy).

// Blobs is the node's blob store and the fetching of copies from holders.
type Blobs interface {
	Name() string // this node's
	// MaxBytes bounds one blob (--max-blob-bytes; 0: none).
	MaxBytes() int64
	// Stage writes body to the store under its SHA-256 (want: the hash it
	// must have; "": any).
	Stage(body io.Reader, want blobs.Hash) (blobs.Hash, int64, error)
	// Sync puts h's copy on stable storage.
	Sync(h blobs.Hash) error
	Has(h blobs.Hash) bool
	// Ensure makes sure this node holds a verified copy of h, fetching
	// it from a holder the ledger names (blobs.ErrNotFound: the ledger
	// knows none; other errors: no holder could send it).
	Ensure(ctx context.Context, h blobs.Hash) error
	// Serve answers r with h's copy, named name (Range, conditional
	// requests); blobs.ErrCorrupt or ErrNotFound: the copy went bad and
	// was dropped, nothing was written.
	Serve(w http.ResponseWriter, r *http.Request, h blobs.Hash, name string) error
	// ServeToPeer answers a peer, which verifies what it reads.
	ServeToPeer(w http.ResponseWriter, r *http.Request, h blobs.Hash)
	// Lost records, in the background, that this node's copy of h is
	// gone.
	Lost(h blobs.Hash)
	// StoreError is the answer's error for a failure to store or fetch:
	// a *NoSpaceError when the disk is full (it tells the health probe).
	StoreError(err error) error
}

// NoSpaceError is a failure to store for want of disk space (507).
type NoSpaceError struct{ Msg string }

func (e *NoSpaceError) Error() string { return e.Msg }

// errBlobTooBig: a blob upload passed --max-blob-bytes.
var errBlobTooBig = errors.New("node: blob too big")

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errBlobTooBig
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	k, err := c.r.Read(p)
	c.left -= int64(k)
	if c.left < 0 {
		return k, errBlobTooBig
	}
	return k, err
}

// writeStoreError answers a failure to store or fetch a blob on this
// node: 507 when its disk is full, else 500.
func (s *Server) writeStoreError(w http.ResponseWriter, err error) {
	var ns *NoSpaceError
	if errors.As(s.Blobs.StoreError(err), &ns) {
		WriteError(w, http.StatusInsufficientStorage, api.CodeNoSpace, ns)
		return
	}
	WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
}

// blobJob is the job a blob request acts in: a task's own job, or the
// ?job= an operator's or the cluster token's caller names.
func (s *Server) blobJob(r *http.Request, p auth.Principal) (string, error) {
	q := r.URL.Query().Get("job")
	if !p.IsTask() {
		if !p.May(auth.RoleRead) {
			return "", errors.New("this token cannot read blobs")
		}
		return q, nil
	}
	var job string
	s.Ledger.Read(func(st *raftfsm.State, _ uint64) {
		if t := st.Tasks[p.Task]; t != nil {
			job = t.Job
		}
	})
	if q != "" && q != job {
		return "", fmt.Errorf("a task token acts only in its own job %s", job)
	}
	return job, nil
}

// handleBlobPut stores the request body on this node under its SHA-256
// and records this node as a holder (and the name, within the job).
func (s *Server) handleBlobPut(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	job, err := s.blobJob(r, p)
	if err != nil {
		WriteError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	}
	name := r.URL.Query().Get("name")
	if name != "" {
		if err := blobs.ValidName(name); err != nil {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		if job == "" {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("a blob name lives in a job: run inside a task, or give ?job="))
			return
		}
	}
	if job != "" {
		var state raftfsm.JobState
		WaitReplica(r.Context(), s.Ledger, 3*time.Second, func(st *raftfsm.State) bool {
			if j := st.Jobs[job]; j != nil {
				state = j.State
			}
			return state != ""
		})
		switch state {
		case "":
			WriteError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no job %s", job))
			return
		case raftfsm.JobClosed:
			WriteError(w, http.StatusConflict, api.CodeJobClosed, fmt.Errorf("job %s is closed: no more blobs for it", job))
			return
		}
	}
	var want blobs.Hash
	if q := r.URL.Query().Get("sha256"); q != "" {
		h, ok := blobs.ParseRef(q)
		if !ok {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("sha256=%q is not a SHA-256", q))
			return
		}
		want = h
	}
	max := s.Blobs.MaxBytes()
	if max > 0 && r.ContentLength > max {
		s.Counters.QuotaRefused("blob_bytes")
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, fmt.Errorf("a blob of %s: at most %s (--max-blob-bytes)", api.ByteSize(r.ContentLength), api.ByteSize(max)))
		return
	}
	body := io.Reader(r.Body)
	if max > 0 {
		body = &capReader{r: r.Body, left: max}
	}
	h, size, err := s.Blobs.Stage(body, want)
	switch {
	case errors.Is(err, errBlobTooBig):
		s.Counters.QuotaRefused("blob_bytes")
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, fmt.Errorf("the blob passed %s (--max-blob-bytes)", api.ByteSize(max)))
		return
	case errors.Is(err, blobs.ErrHashMismatch):
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	case err != nil:
		s.writeStoreError(w, err)
		return
	}
	// The copy reaches the disk while its record goes through Raft: the
	// answer waits for both. A crash in between can leave a record of a
	// copy the disk lost; the next start finds it (VerifyUnflushed, then
	// collect) and withdraws the record.
	flushed := make(chan error, 1)
	go func() { flushed <- s.Blobs.Sync(h) }()
	c := raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(h), Size: size, Node: s.Blobs.Name(), Job: job, Name: name}}
	_, err = s.Writer.Submit(r.Context(), c)
	idx := s.Ledger.Index() // the Writer returns once this replica applied the record
	if ferr := <-flushed; ferr != nil {
		if err == nil {
			s.Blobs.Lost(h)
		}
		s.writeStoreError(w, ferr)
		return
	}
	if errors.Is(err, raftfsm.ErrQuota) {
		s.Counters.QuotaRefused("job_blob_bytes")
	}
	if err != nil {
		WriteLedgerError(w, err)
		return
	}
	// The index of the record, as spawns carry theirs: a client that gets
	// the blob through another node passes it (?index=), and that node
	// waits for its replica to hold the record instead of guessing.
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	WriteJSON(w, http.StatusOK, api.BlobInfo{SchemaVersion: api.SchemaVersion, Ref: h.Ref(), Size: size, Job: job, Name: name, Index: idx})
}

// handleBlobGet serves a blob by hash or by name in the caller's job,
// fetching it from a holder first if this node lacks it. A task token gets
// only the blobs its job refers to.
func (s *Server) handleBlobGet(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	job, err := s.blobJob(r, p)
	if err != nil {
		WriteError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	}
	s.ServeBlobRef(w, r, job, p.IsTask(), r.PathValue("ref"))
}

// handleBlobURL serves GET /v1/blob/{token}/{ref...}: the task's BLOB_URL,
// which carries its blob capability in the path so a plain curl needs no
// flags. Only a capability is taken here (no token that could do more
// belongs in a URL), and it reads only the blobs its job refers to.
func (s *Server) handleBlobURL(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r.PathValue("token"))
	if !ok {
		return
	}
	if !p.Blob {
		WriteError(w, http.StatusForbidden, api.CodeForbidden, errors.New("BLOB_URL takes a task's blob capability (the token in its $BLOB_URL), not an API token: use GET /v1/blobs/REF with the token as a bearer"))
		return
	}
	s.ServeBlobRef(w, r, p.Job, true, r.PathValue("ref"))
}

// ServeBlobRef serves ref (a hash, or a name in job). Confined (a task's
// request), a hash is served only if job refers to it: put in it, or named
// in it.
func (s *Server) ServeBlobRef(w http.ResponseWriter, r *http.Request, job string, confined bool, ref string) {
	// ?index= (BlobInfo.Index of the put): the blob's record is at or
	// before it. Unless a local copy already answers a hash, wait until
	// this replica applied it, as a relayed write's answer does.
	if idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64); err == nil {
		if h, ok := blobs.ParseRef(ref); !ok || !s.Blobs.Has(h) {
			WaitIndex(r.Context(), s.Ledger, idx, 10*time.Second)
		}
	}
	var h blobs.Hash
	var name string
	var err error
	s.Ledger.Read(func(st *raftfsm.State, _ uint64) { h, name, err = resolveBlob(st, job, confined, ref) })
	if errors.Is(err, blobs.ErrNotFound) {
		// A name (or, for a task, a hash) put through another node a
		// moment ago may not have reached this replica yet.
		WaitReplica(r.Context(), s.Ledger, 3*time.Second, func(st *raftfsm.State) bool {
			h, name, err = resolveBlob(st, job, confined, ref)
			return !errors.Is(err, blobs.ErrNotFound)
		})
	}
	if err != nil {
		WriteError(w, http.StatusNotFound, api.CodeNotFound, err)
		return
	}
	// A copy found corrupt while serving is dropped and fetched again
	// from a good holder: one retry.
	for try := 0; ; try++ {
		if err := s.Blobs.Ensure(r.Context(), h); err != nil {
			var ns *NoSpaceError
			if errors.As(s.Blobs.StoreError(err), &ns) {
				WriteError(w, http.StatusInsufficientStorage, api.CodeNoSpace, ns)
				return
			}
			code := http.StatusBadGateway
			if errors.Is(err, blobs.ErrNotFound) {
				code = http.StatusNotFound
			}
			WriteError(w, code, api.CodeNotFound, err)
			return
		}
		err := s.Blobs.Serve(w, r, h, name)
		if err == nil {
			return
		}
		if try == 1 || !(errors.Is(err, blobs.ErrCorrupt) || errors.Is(err, blobs.ErrNotFound)) {
			WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
			return
		}
	}
}

// resolveBlob turns a reference (sha256:<hex>, <hex>, or a name in job)
// into a hash; confined, only a hash job refers to.
func resolveBlob(s *raftfsm.State, job string, confined bool, ref string) (blobs.Hash, string, error) {
	if h, ok := blobs.ParseRef(ref); ok {
		if confined && !jobRefers(s, job, string(h)) {
			return "", "", fmt.Errorf("%w: job %s refers to no blob %s (a task reads only the blobs its own job put or names)", blobs.ErrNotFound, job, h.Ref())
		}
		return h, "", nil
	}
	if err := blobs.ValidName(ref); err != nil {
		return "", "", err
	}
	if job == "" {
		return "", "", fmt.Errorf("blob name %q: names live in a job; run inside a task or give ?job=", ref)
	}
	var h string
	if j := s.Jobs[job]; j != nil {
		h = j.Blobs[ref]
	}
	if h == "" {
		return "", "", fmt.Errorf("%w: no blob named %q in job %s", blobs.ErrNotFound, ref, job)
	}
	return blobs.Hash(h), ref, nil
}

// jobRefers reports whether job refers to the blob hash h (its BlobRef,
// which holds every blob put in the job or named in it).
func jobRefers(s *raftfsm.State, job, h string) bool {
	j := s.Jobs[job]
	if j == nil {
		return false
	}
	_, ok := slices.BinarySearch(j.BlobRef, h)
	return ok
}

// handleInternalBlob serves a local copy to a peer; it never fetches.
func (s *Server) handleInternalBlob(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	h, ok := blobs.ParseRef(r.PathValue("hash"))
	if !ok {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("not a SHA-256"))
		return
	}
	if !s.Blobs.Has(h) {
		WriteError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("%s holds no copy of %s", s.Blobs.Name(), h.Ref()))
		return
	}
	// The peer verifies every byte it fetches (blobs.Fetch): a copy hashed
	// here recently is sent without hashing it again.
	s.Blobs.ServeToPeer(w, r, h)
}

// handlePull asks this node to fetch a blob (replication, from the leader).
func (s *Server) handlePull(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	h, ok := blobs.ParseRef(r.PathValue("hash"))
	if !ok {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("not a SHA-256"))
		return
	}
	if idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64); err == nil {
		WaitIndex(r.Context(), s.Ledger, idx, 10*time.Second)
	}
	if err := s.Blobs.Ensure(r.Context(), h); err != nil {
		WriteError(w, http.StatusBadGateway, api.CodeNotFound, err)
		return
	}
	// A replica counts once it is on stable storage.
	if err := s.Blobs.Sync(h); err != nil {
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "ref": h.Ref()})
}

// WaitReplica waits until cond holds on l, or max passed or ctx ended,
// and reports whether it holds: a request naming what was written through
// another node a moment ago waits for this replica to catch up instead of
// answering "not found".
func WaitReplica(ctx context.Context, l Ledger, max time.Duration, cond func(s *raftfsm.State) bool) bool {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		_, ch := l.Watch()
		ok := false
		l.Read(func(s *raftfsm.State, _ uint64) { ok = cond(s) })
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
