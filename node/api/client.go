package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one node's API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7380
	Token string // bearer token: the cluster token or a task token
	HTTP  *http.Client
	// RetryFor bounds how long requests that are safe to repeat (reads,
	// keyed spawns, reports, cancels) are retried while the mesh has no
	// leader or the node cannot be reached. Zero means 15s.
	RetryFor time.Duration
}

// NewClient returns a client for the node at base.
func NewClient(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{}}
}

// StatusError is a non-2xx answer from a node.
type StatusError struct {
	HTTPStatus int
	Code       string
	Msg        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("api: %s (%d %s)", e.Msg, e.HTTPStatus, e.Code)
}

// ErrUnavailable marks a node that could not be reached or had no leader
// within the retry window.
var ErrUnavailable = errors.New("api: node unavailable")

// IsCode reports whether err is a StatusError with the given code.
func IsCode(err error, code string) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// Spawn asks for a new task. Give req.Key to make retries safe; without a
// key the request is sent once.
func (c *Client) Spawn(ctx context.Context, req SpawnRequest) (SpawnResponse, error) {
	var out SpawnResponse
	err := c.do(ctx, http.MethodPost, "/v1/spawn", req, &out, req.Key != "")
	return out, err
}

// Status returns the mesh as the node sees it.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out, true)
	return out, err
}

// Job returns a job and its tasks. With index > 0 the node holds the
// request until its ledger has moved past index, or wait has passed.
func (c *Client) Job(ctx context.Context, id string, index uint64, wait time.Duration) (JobDetail, error) {
	var out JobDetail
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	p := "/v1/jobs/" + url.PathEscape(id)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, p, nil, &out, true)
	return out, err
}

// WaitJob follows a job until it closes and returns its final detail.
// onChange, if set, sees every version on the way.
func (c *Client) WaitJob(ctx context.Context, id string, onChange func(JobDetail)) (JobDetail, error) {
	var idx uint64
	for {
		d, err := c.Job(ctx, id, idx, 30*time.Second)
		if err != nil {
			return d, err
		}
		if onChange != nil && d.Index != idx {
			onChange(d)
		}
		if d.Job.State == "closed" {
			return d, nil
		}
		idx = d.Index
	}
}

// Cancel closes an open job as cancelled.
func (c *Client) Cancel(ctx context.Context, job string) (JobDetail, error) {
	var out JobDetail
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(job)+"/cancel", struct{}{}, &out, true)
	return out, err
}

// Rigs lists the rigs the ledger tracks (GET /v1/rigs).
func (c *Client) Rigs(ctx context.Context) (Rigs, error) {
	var out Rigs
	err := c.do(ctx, http.MethodGet, "/v1/rigs", nil, &out, true)
	return out, err
}

// Quarantine takes node out of topic's service, with the reason.
func (c *Client) Quarantine(ctx context.Context, node, topic, reason string) (Rig, error) {
	var out Rig
	err := c.do(ctx, http.MethodPost, "/v1/rigs/"+url.PathEscape(node)+"/"+url.PathEscape(topic)+"/quarantine?reason="+url.QueryEscape(reason), struct{}{}, &out, true)
	return out, err
}

// Release puts a quarantined node back into topic's service.
func (c *Client) Release(ctx context.Context, node, topic string) (Rig, error) {
	var out Rig
	err := c.do(ctx, http.MethodPost, "/v1/rigs/"+url.PathEscape(node)+"/"+url.PathEscape(topic)+"/release", struct{}{}, &out, true)
	return out, err
}

// Report tells the ledger about an attempt (node-to-node).
func (c *Client) Report(ctx context.Context, r Report) error {
	_, err := c.ReportAt(ctx, r)
	return err
}

// ReportAt is Report, and returns the ledger index the leader had applied
// when it answered (IndexHeader; 0 if the answer carried none).
func (c *Client) ReportAt(ctx context.Context, r Report) (uint64, error) {
	h, err := c.doHeader(ctx, http.MethodPost, "/v1/internal/report", r, nil, true)
	return headerIndex(h), err
}

// IndexHeader carries the ledger index a write was applied at (the
// leader's applied index when it answered).
const IndexHeader = "X-Ourci-Index"

func headerIndex(h http.Header) uint64 {
	idx, _ := strconv.ParseUint(h.Get(IndexHeader), 10, 64)
	return idx
}

// Log opens a task's output. With follow, the stream stays open until the
// task ends.
func (c *Client) Log(ctx context.Context, task string, follow bool) (io.ReadCloser, error) {
	return c.LogOf(ctx, task, LogOptions{Follow: follow})
}

// LogOptions choose what of a task's log to read.
type LogOptions struct {
	Follow  bool // until the attempt ends
	Attempt int  // 0: the current one
	Tail    int  // >0: only the last Tail lines (not with Follow)
	// Timestamps starts each line with its arrival time (RFC 3339, UTC,
	// to the millisecond, then a space).
	Timestamps bool
	// From resumes a read where an earlier one stopped: a byte offset
	// into the output, or with Timestamps a line number.
	From int64
}

// LogOf streams what o chooses of a task's log.
func (c *Client) LogOf(ctx context.Context, task string, o LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.Follow {
		q.Set("follow", "1")
	}
	if o.Attempt > 0 {
		q.Set("attempt", strconv.Itoa(o.Attempt))
	}
	if o.Tail > 0 {
		q.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Timestamps {
		q.Set("timestamps", "1")
	}
	if o.From > 0 {
		q.Set("from", strconv.FormatInt(o.From, 10))
	}
	p := "/v1/tasks/" + url.PathEscape(task) + "/log"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// LogSections returns the sections of a task's attempt's sealed log
// (attempt 0: the current one). An attempt whose log is not sealed yet
// (it runs, or ended a moment ago) is a StatusError with CodeConflict.
func (c *Client) LogSections(ctx context.Context, task string, attempt int) (LogSections, error) {
	var out LogSections
	p := "/v1/tasks/" + url.PathEscape(task) + "/log/sections"
	if attempt > 0 {
		p += "?attempt=" + strconv.Itoa(attempt)
	}
	err := c.do(ctx, http.MethodGet, p, nil, &out, true)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, retry bool) error {
	_, err := c.doHeader(ctx, method, path, in, out, retry)
	return err
}

// doHeader is do, returning the headers of the last answer.
func (c *Client) doHeader(ctx context.Context, method, path string, in, out any, retry bool) (http.Header, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: encode request: %w", err)
		}
		body = b
	}
	window := c.RetryFor
	if window == 0 {
		window = 15 * time.Second
	}
	deadline := time.Now().Add(window)
	backoff := 20 * time.Millisecond
	for {
		h, err := c.once(ctx, method, path, body, out)
		if err == nil || !retry || !retryable(err) || time.Now().After(deadline) {
			return h, err
		}
		select {
		case <-ctx.Done():
			return h, errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.HTTPStatus == http.StatusServiceUnavailable || se.HTTPStatus == http.StatusBadGateway
	}
	return errors.Is(err, ErrUnavailable)
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (http.Header, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.Header, decodeError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.Header, fmt.Errorf("api: decode %s %s: %w", method, path, err)
	}
	return resp.Header, nil
}

func (c *Client) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.doRaw(req)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
	}
	return &StatusError{HTTPStatus: resp.StatusCode, Code: e.Code, Msg: e.Error}
}

// PutBlob uploads r to the node's blob store. q may carry name and job.
func (c *Client) PutBlob(ctx context.Context, r io.Reader, q url.Values) (BlobInfo, error) {
	var out BlobInfo
	p := "/v1/blobs"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Base+p, r)
	if err != nil {
		return out, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.doRaw(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return out, decodeError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("api: decode blob info: %w", err)
	}
	return out, nil
}

// GetBlob downloads a blob by reference (sha256:<hex>, or a name in job;
// inside a task job may be empty).
func (c *Client) GetBlob(ctx context.Context, ref, job string) (io.ReadCloser, error) {
	return c.GetBlobAt(ctx, ref, job, 0)
}

// GetBlobAt is GetBlob for a blob recorded at ledger index (BlobInfo.Index
// of its put) or before: the node first waits until its replica has
// applied index, so a blob just put through another node is found at once.
func (c *Client) GetBlobAt(ctx context.Context, ref, job string, index uint64) (io.ReadCloser, error) {
	q := url.Values{}
	if job != "" {
		q.Set("job", job)
	}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	p := "/v1/blobs/" + escapeRef(ref)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// escapeRef escapes each path element of a blob name.
func escapeRef(ref string) string {
	parts := strings.Split(ref, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func (c *Client) doRaw(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, c.Base, err)
	}
	return resp, nil
}

// Drain asks the node to leave the mesh gracefully; it answers once its
// running tasks ended and it left the Raft group. It returns the node's name.
func (c *Client) Drain(ctx context.Context) (string, error) {
	var out struct {
		Node string `json:"node"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/drain", struct{}{}, &out, false)
	return out.Node, err
}

// Approve lets a held job run.
func (c *Client) Approve(ctx context.Context, job, by string) (JobDetail, error) {
	var out JobDetail
	p := "/v1/jobs/" + url.PathEscape(job) + "/approve"
	if by != "" {
		p += "?by=" + url.QueryEscape(by)
	}
	err := c.do(ctx, http.MethodPost, p, struct{}{}, &out, true)
	return out, err
}

// KeyringResult is a node's gossip keyring, by fingerprint, the key that
// encrypts first.
type KeyringResult struct {
	Node string   `json:"node"`
	Keys []string `json:"keys"`
}

// Keyring changes the node's gossip keyring (op install, use or remove;
// key base64); op "" only lists it.
func (c *Client) Keyring(ctx context.Context, op, key string) (KeyringResult, error) {
	var out KeyringResult
	if op == "" {
		err := c.do(ctx, http.MethodGet, "/v1/keyring", nil, &out, true)
		return out, err
	}
	err := c.do(ctx, http.MethodPost, "/v1/keyring", map[string]string{"op": op, "key": key}, &out, true)
	return out, err
}

// SaveSnapshot streams a snapshot file of the ledger (the leader's, through
// this node; GET /v1/operator/snapshot, cluster token). It is retried
// while the mesh has no leader, within RetryFor.
func (c *Client) SaveSnapshot(ctx context.Context) (io.ReadCloser, error) {
	return c.snapshotRequest(ctx, http.MethodGet, nil, func(resp *http.Response) (io.ReadCloser, error) {
		return resp.Body, nil
	})
}

// RestoreSnapshot sends a snapshot file to replace the ledger on every
// replica (POST /v1/operator/snapshot, cluster token). It is retried from
// the file's start while the mesh has no leader (503: nothing was
// restored), within RetryFor.
func (c *Client) RestoreSnapshot(ctx context.Context, file io.ReadSeeker) (SnapshotRestored, error) {
	var out SnapshotRestored
	_, err := c.snapshotRequest(ctx, http.MethodPost, file, func(resp *http.Response) (io.ReadCloser, error) {
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, fmt.Errorf("api: decode the restore's answer: %w", err)
		}
		return nil, nil
	})
	return out, err
}

func (c *Client) snapshotRequest(ctx context.Context, method string, file io.ReadSeeker, ok func(*http.Response) (io.ReadCloser, error)) (io.ReadCloser, error) {
	window := c.RetryFor
	if window == 0 {
		window = 15 * time.Second
	}
	deadline := time.Now().Add(window)
	backoff := 20 * time.Millisecond
	for {
		var body io.Reader
		if file != nil {
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("api: %w", err)
			}
			body = io.NopCloser(file) // the transport must not close the caller's file
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+"/v1/operator/snapshot", body)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		if file != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		resp, err := c.doRaw(req)
		if err == nil && resp.StatusCode/100 == 2 {
			return ok(resp)
		}
		if err == nil {
			err = decodeError(resp)
			resp.Body.Close()
		}
		var se *StatusError
		again := errors.As(err, &se) && se.HTTPStatus == http.StatusServiceUnavailable
		if method == http.MethodGet {
			again = retryable(err)
		}
		if !again || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// RaftPeers lists the Raft servers as the leader sees them.
func (c *Client) RaftPeers(ctx context.Context) (RaftPeers, error) {
	var out RaftPeers
	err := c.do(ctx, http.MethodGet, "/v1/operator/raft", nil, &out, true)
	return out, err
}

// RemovePeer removes the dead Raft servers of a node name (or one Raft ID,
// when id is true).
func (c *Client) RemovePeer(ctx context.Context, name string, id bool) (RemovedPeers, error) {
	q := url.Values{"name": {name}}
	if id {
		q = url.Values{"id": {name}}
	}
	var out RemovedPeers
	err := c.do(ctx, http.MethodPost, "/v1/operator/raft/remove-peer?"+q.Encode(), nil, &out, false)
	return out, err
}
