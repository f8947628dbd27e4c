package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Health is a node's answer at /v1/health (also with 503, when unhealthy).
type Health struct {
	SchemaVersion int    `json:"schema_version"`
	Node          string `json:"node"`
	OK            bool   `json:"ok"`
	Reason        string `json:"reason,omitempty"` // why not ok
	Index         uint64 `json:"index"`            // the replica's last applied index
	Ready         bool   `json:"ready"`            // caught up since start
	// Established: this node leads and its barrier passed, so Index covers
	// everything committed so far.
	Established bool `json:"established,omitempty"`
}

// Health asks the node at base for its health, within 2 s; not ok when it
// gave no health answer.
func (c *Client) Health(ctx context.Context, base string) (Health, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/health", nil)
	if err != nil {
		return Health{}, false
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Health{}, false
	}
	defer resp.Body.Close()
	var h Health
	// 503 still carries the body: an unhealthy node's index is known.
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h) != nil || h.SchemaVersion == 0 {
		return Health{}, false
	}
	return h, true
}

// Pull asks the node at base to fetch blob hash from its holders, once its
// replica reached index, and returns when it holds the copy (on disk) or
// failed. It gives up after 30 minutes.
func (c *Client) Pull(ctx context.Context, base, hash string, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	return c.call(ctx, http.MethodPost, base+"/v1/internal/blobs/"+url.PathEscape(hash)+"/pull?index="+strconv.FormatUint(index, 10))
}

// Leave asks the leader at base to remove member (draining) from the
// Raft group.
func (c *Client) Leave(ctx context.Context, base, member string) error {
	return c.call(ctx, http.MethodPost, base+"/v1/internal/leave?member="+url.QueryEscape(member))
}

// LogTail returns the last max bytes of an attempt's log from the node at
// base (the one that ran it), within 30 s.
func (c *Client) LogTail(ctx context.Context, base, task string, attempt, max int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := fmt.Sprintf("%s/v1/tasks/%s/log?attempt=%d", strings.TrimRight(base, "/"), url.PathEscape(task), attempt)
	resp, err := c.OpenLog(ctx, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	tail := &tailBuffer{max: max}
	if _, err := io.Copy(tail, resp.Body); err != nil {
		return nil, err
	}
	return tail.bytes(), nil
}

// OpenLog opens a log stream at u (a peer's log route, with its query)
// for the caller to read on; any answer but 200 is an error.
func (c *Client) OpenLog(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, answerError(resp)
	}
	return resp, nil
}

// PostLogChunks sends an attempt's encoded log chunks (back to back) to
// the node at base, which holds a copy of the log, within 10 s. It answers
// the next chunk it wants; gap means it refused the chunks (409) because
// one before them is missing.
func (c *Client) PostLogChunks(ctx context.Context, base, task string, attempt int, chunks []byte) (next uint64, gap bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/internal/logs/"+url.PathEscape(task)+"/"+strconv.Itoa(attempt), bytes.NewReader(chunks))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set(StreamerHeader, c.Self)
	resp, err := c.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		return 0, false, answerError(resp)
	}
	var ans struct {
		Next *uint64 `json:"next"`
	}
	if derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&ans); derr != nil || ans.Next == nil {
		return 0, false, fmt.Errorf("peer: answered log chunks with %s and no next chunk: %v", resp.Status, derr)
	}
	return *ans.Next, resp.StatusCode == http.StatusConflict, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) bytes() []byte {
	if len(b.buf) > b.max {
		return b.buf[len(b.buf)-b.max:]
	}
	return b.buf
}
