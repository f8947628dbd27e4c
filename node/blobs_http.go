package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/raftfsm"
)

// ErrNoHolder means no live node holds a blob the ledger knows.
var ErrNoHolder = errors.New("node: no live node holds the blob")

// blobJob is the job a blob request acts in: a task's own job, or the
// ?job= an operator's or the cluster token's caller names.
func (n *Node) blobJob(r *http.Request, p Principal) (string, error) {
	q := r.URL.Query().Get("job")
	if !p.IsTask() {
		if !p.May(RoleRead) {
			return "", errors.New("this token cannot read blobs")
		}
		return q, nil
	}
	var job string
	n.fsm.Read(func(s *raftfsm.State, _ uint64) {
		if t := s.Tasks[p.Task]; t != nil {
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
func (n *Node) handleBlobPut(w http.ResponseWriter, r *http.Request, p Principal) {
	job, err := n.blobJob(r, p)
	if err != nil {
		writeError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	}
	name := r.URL.Query().Get("name")
	if name != "" {
		if err := blobs.ValidName(name); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		if job == "" {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("a blob name lives in a job: run inside a task, or give ?job="))
			return
		}
	}
	if job != "" {
		var state raftfsm.JobState
		n.waitReplica(r.Context(), 3*time.Second, func(s *raftfsm.State) bool {
			if j := s.Jobs[job]; j != nil {
				state = j.State
			}
			return state != ""
		})
		switch state {
		case "":
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no job %s", job))
			return
		case raftfsm.JobClosed:
			writeError(w, http.StatusConflict, api.CodeJobClosed, fmt.Errorf("job %s is closed: no more blobs for it", job))
			return
		}
	}
	var want blobs.Hash
	if s := r.URL.Query().Get("sha256"); s != "" {
		h, ok := blobs.ParseRef(s)
		if !ok {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf("sha256=%q is not a SHA-256", s))
			return
		}
		want = h
	}
	max := n.cfg.MaxBlobBytes
	if max > 0 && r.ContentLength > max {
		n.metrics.QuotaRefused("blob_bytes") // metrics
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, fmt.Errorf("a blob of %s: at most %s (--max-blob-bytes)", api.ByteSize(r.ContentLength), api.ByteSize(max)))
		return
	}
	body := io.Reader(r.Body)
	if max > 0 {
		body = &capReader{r: r.Body, left: max}
	}
	h, size, err := n.blobs.Stage(body, want)
	switch {
	case errors.Is(err, errBlobTooBig):
		n.metrics.QuotaRefused("blob_bytes") // metrics
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeQuota, fmt.Errorf("the blob passed %s (--max-blob-bytes)", api.ByteSize(max)))
		return
	case errors.Is(err, blobs.ErrHashMismatch):
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
		return
	case err != nil:
		n.writeStoreError(w, err)
		return
	}
	// The copy reaches the disk while its record goes through Raft: the
	// answer waits for both. A crash in between can leave a record of a
	// copy the disk lost; the next start finds it (VerifyUnflushed, then
	// collect) and withdraws the record.
	flushed := make(chan error, 1)
	go func() { flushed <- n.blobs.Sync(h) }()
	rep := api.Report{Kind: api.ReportBlobAdded, Node: n.cfg.Name, Hash: string(h), Size: size, Job: job, Name: name}
	idx, err := n.applyReportAt(r.Context(), rep)
	if ferr := <-flushed; ferr != nil {
		if err == nil {
			n.goFunc(func() { n.reportAsync(api.Report{Kind: api.ReportBlobDropped, Node: n.cfg.Name, Hash: string(h)}) })
		}
		n.writeStoreError(w, ferr)
		return
	}
	if errors.Is(err, raftfsm.ErrQuota) {
		n.metrics.QuotaRefused("job_blob_bytes") // metrics
	}
	if err != nil {
		writeLedgerError(w, unwrapRefusal(err))
		return
	}
	// The index of the record, as spawns carry theirs: a client that gets
	// the blob through another node passes it (?index=), and that node
	// waits for its replica to hold the record instead of guessing.
	if idx > 0 {
		w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	}
	writeJSON(w, http.StatusOK, api.BlobInfo{SchemaVersion: api.SchemaVersion, Ref: h.Ref(), Size: size, Job: job, Name: name, Index: idx})
}

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

// writeStoreError answers a failure to store a blob on this node: 507 when
// its disk is full (the health probe runs at once), else 500.
func (n *Node) writeStoreError(w http.ResponseWriter, err error) {
	n.noteWriteError(err)
	if isNoSpace(err) {
		writeError(w, http.StatusInsufficientStorage, api.CodeNoSpace, fmt.Errorf("no space on %s: %s; free space in its data directory (%s), or use another node", n.cfg.Name, runner.ErrText(err), n.cfg.DataDir))
		return
	}
	writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
}

// unwrapRefusal returns the ledger error inside a refused report, for the
// status code mapping.
func unwrapRefusal(err error) error {
	for _, e := range []error{raftfsm.ErrJobClosed, raftfsm.ErrNotFound, raftfsm.ErrConflict, raftfsm.ErrInvalid, raftfsm.ErrStaleAttempt} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", e, err)
		}
	}
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == api.CodeJobClosed {
		return fmt.Errorf("%w: %w", raftfsm.ErrJobClosed, err)
	}
	return err
}

// handleBlobGet serves a blob by hash or by name in the caller's job,
// fetching it from a holder first if this node lacks it. A task token gets
// only the blobs its job refers to.
func (n *Node) handleBlobGet(w http.ResponseWriter, r *http.Request, p Principal) {
	job, err := n.blobJob(r, p)
	if err != nil {
		writeError(w, http.StatusForbidden, api.CodeForbidden, err)
		return
	}
	n.serveBlobRef(w, r, job, p.IsTask(), r.PathValue("ref"))
}

// handleBlobURL serves GET /v1/blob/{token}/{ref...}: the task's BLOB_URL,
// which carries its blob capability in the path so a plain curl needs no
// flags. Only a capability is taken here (no token that could do more
// belongs in a URL), and it reads only the blobs its job refers to.
func (n *Node) handleBlobURL(w http.ResponseWriter, r *http.Request) {
	p, ok := n.api.Authenticate(w, r.PathValue("token"))
	if !ok {
		return
	}
	if !p.Blob {
		writeError(w, http.StatusForbidden, api.CodeForbidden, errors.New("BLOB_URL takes a task's blob capability (the token in its $BLOB_URL), not an API token: use GET /v1/blobs/REF with the token as a bearer"))
		return
	}
	n.serveBlobRef(w, r, p.Job, true, r.PathValue("ref"))
}

// serveBlobRef serves ref (a hash, or a name in job). Confined (a task's
// request), a hash is served only if job refers to it: put in it, or named
// in it.
func (n *Node) serveBlobRef(w http.ResponseWriter, r *http.Request, job string, confined bool, ref string) {
	// ?index= (BlobInfo.Index of the put): the blob's record is at or
	// before it. Unless a local copy already answers a hash, wait until
	// this replica applied it, as a relayed write's answer does.
	if idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64); err == nil {
		if h, ok := blobs.ParseRef(ref); !ok || !n.blobs.Has(h) {
			n.waitIndex(r.Context(), idx, 10*time.Second)
		}
	}
	h, name, err := n.resolveBlob(job, confined, ref)
	if errors.Is(err, blobs.ErrNotFound) {
		// A name (or, for a task, a hash) put through another node a
		// moment ago may not have reached this replica yet.
		n.waitReplica(r.Context(), 3*time.Second, func(s *raftfsm.State) bool {
			h, name, err = resolveBlobIn(s, job, confined, ref)
			return !errors.Is(err, blobs.ErrNotFound)
		})
	}
	if err != nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, err)
		return
	}
	// A copy found corrupt while serving is dropped (OnCorrupt reports it)
	// and fetched again from a good holder: one retry.
	for try := 0; ; try++ {
		if err := n.ensureBlob(r.Context(), h); err != nil {
			if isNoSpace(err) {
				n.writeStoreError(w, err)
				return
			}
			code := http.StatusBadGateway
			if errors.Is(err, blobs.ErrNotFound) {
				code = http.StatusNotFound
			}
			writeError(w, code, api.CodeNotFound, err)
			return
		}
		err := n.blobs.TryServe(n.countServed(w, "client"), r, h, path.Base(name)) // metrics: bytes served
		if err == nil {
			return
		}
		if try == 1 || !(errors.Is(err, blobs.ErrCorrupt) || errors.Is(err, blobs.ErrNotFound)) {
			writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
			return
		}
	}
}

// resolveBlob turns a reference (sha256:<hex>, <hex>, or a name in job)
// into a hash; confined, only a hash job refers to.
func (n *Node) resolveBlob(job string, confined bool, ref string) (h blobs.Hash, name string, err error) {
	n.fsm.Read(func(s *raftfsm.State, _ uint64) { h, name, err = resolveBlobIn(s, job, confined, ref) })
	return h, name, err
}

func resolveBlobIn(s *raftfsm.State, job string, confined bool, ref string) (blobs.Hash, string, error) {
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

// ensureBlob makes sure this node holds a verified copy of h: a corrupt
// local copy is dropped, a missing one fetched from a holder the ledger
// names (live ones first), verified while streaming, and recorded.
func (n *Node) ensureBlob(ctx context.Context, h blobs.Hash) error {
	f, err := n.blobs.Open(h)
	if err == nil {
		f.Close()
		return nil
	}
	if !errors.Is(err, blobs.ErrCorrupt) && !errors.Is(err, blobs.ErrNotFound) {
		return err // a corrupt copy was deleted and reported (OnCorrupt): fetch anew
	}
	var holders []string
	var size int64
	// A blob put through another node a moment ago may not have reached
	// this replica yet: wait a little for its record.
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, ch := n.fsm.Watch()
		n.fsm.Read(func(s *raftfsm.State, _ uint64) {
			if b := s.Blobs[string(h)]; b != nil {
				holders, size = slices.Clone(b.Holders), b.Size
			}
		})
		if holders != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if holders == nil {
		return fmt.Errorf("%w: the ledger knows no blob %s", blobs.ErrNotFound, h.Ref())
	}
	live := memberMap(n.gossip.Members())
	slices.SortStableFunc(holders, func(a, b string) int {
		_, la := live[a]
		_, lb := live[b]
		switch {
		case la && !lb:
			return -1
		case lb && !la:
			return 1
		}
		return 0
	})
	var errs []error
	for _, holder := range holders {
		if holder == n.cfg.Name {
			continue
		}
		base, ok := n.memberURL(holder)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: not reachable", holder))
			continue
		}
		url := strings.TrimRight(base, "/") + "/v1/internal/blobs/" + string(h)
		got, err := n.blobs.Fetch(ctx, n.blobFetchClient(), url, h, n.peers.Auth) // metrics: counts bytes fetched
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", holder, err))
			continue
		}
		if got != size {
			n.log.Warn("fetched blob size differs from the ledger's", "hash", h, "size", got, "ledger_size", size)
		}
		// The copy serves from now on; the ledger learns of it only once
		// it is on stable storage, so a holder record never names a copy
		// a crash could take back.
		n.goFunc(func() {
			if err := n.blobs.Sync(h); err != nil {
				n.log.Warn("a fetched blob copy could not be flushed to disk: dropped", "hash", h, "err", err)
				return
			}
			n.reportAsync(api.Report{Kind: api.ReportBlobAdded, Node: n.cfg.Name, Hash: string(h), Size: got})
		})
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: %s: the ledger names only %s as its holder, and its copy is gone", ErrNoHolder, h.Ref(), n.cfg.Name)
	}
	return fmt.Errorf("%w: %s: %w", ErrNoHolder, h.Ref(), errors.Join(errs...))
}

// handleInternalBlob serves a local copy to a peer; it never fetches.
func (n *Node) handleInternalBlob(w http.ResponseWriter, r *http.Request, p Principal) {
	h, ok := blobs.ParseRef(r.PathValue("hash"))
	if !ok {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("not a SHA-256"))
		return
	}
	if !n.blobs.Has(h) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("%s holds no copy of %s", n.cfg.Name, h.Ref()))
		return
	}
	// The peer verifies every byte it fetches (blobs.Fetch): a copy hashed
	// here recently is sent without hashing it again.
	n.blobs.ServeToVerifier(n.countServed(w, "peer"), r, h) // metrics: bytes served
}

// handlePull asks this node to fetch a blob (replication, from the leader).
func (n *Node) handlePull(w http.ResponseWriter, r *http.Request, p Principal) {
	h, ok := blobs.ParseRef(r.PathValue("hash"))
	if !ok {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("not a SHA-256"))
		return
	}
	if idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64); err == nil {
		n.waitIndex(r.Context(), idx, 10*time.Second)
	}
	if err := n.ensureBlob(r.Context(), h); err != nil {
		writeError(w, http.StatusBadGateway, api.CodeNotFound, err)
		return
	}
	// A replica counts once it is on stable storage.
	if err := n.blobs.Sync(h); err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "ref": h.Ref()})
}

// reportAsync delivers a report in the background, retrying.
func (n *Node) reportAsync(rep api.Report) {
	n.runner.Report(rep)
}
