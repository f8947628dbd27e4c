package blobs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fetchCall is one running download that other Fetches of the hash wait for.
type fetchCall struct {
	done chan struct{}
	url  string
	n    int64
	err  error
	// abandoned: the download failed after its caller's ctx ended, which
	// says nothing about the peer or the blob
	abandoned bool
}

// Fetch downloads blob h from url (the blob's full URL on a peer) into the
// store and returns its size; a blob already stored is not downloaded again.
// The bytes are hashed while they stream into dir/tmp/<hex>.partial and the
// blob is stored only if they match h; otherwise the error wraps
// ErrHashMismatch and the partial file is removed. Like Stage, Fetch returns
// once the verified blob is in place, before it is on stable storage: Sync
// waits for that. If the transfer breaks,
// the partial file stays, and a later Fetch of h (from any peer) re-hashes
// it and asks only for the rest with "Range: bytes=<len>-". A peer's 404
// gives an error wrapping ErrNotFound. c nil means http.DefaultClient; auth,
// if not nil, is called on each request (to add credentials).
//
// Concurrent Fetches of one hash share a single download and its result. A
// waiter does not take a failure as its own, but tries its own URL, if the
// download was from another URL or failed because its caller's ctx ended.
func (s *Store) Fetch(ctx context.Context, c *http.Client, url string, h Hash, auth func(*http.Request)) (int64, error) {
	if err := checkHash(h); err != nil {
		return 0, err
	}
	for {
		if n, err := s.Stat(h); err == nil {
			return n, nil
		}
		s.fetchMu.Lock()
		call, running := s.fetches[h]
		if !running {
			call = &fetchCall{done: make(chan struct{}), url: url}
			s.fetches[h] = call
		}
		s.fetchMu.Unlock()
		if !running {
			s.runFetch(ctx, call, c, url, h, auth)
			return call.n, call.err
		}
		if s.onJoin != nil {
			s.onJoin(h)
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return 0, fmt.Errorf("blobs: fetch %s: %w", h.Ref(), ctx.Err())
		}
		// A failure from another URL says nothing about ours.
		retry := call.err != nil && (call.abandoned || call.url != url)
		if !retry || ctx.Err() != nil {
			return call.n, call.err
		}
	}
}

func (s *Store) runFetch(ctx context.Context, call *fetchCall, c *http.Client, url string, h Hash, auth func(*http.Request)) {
	defer func() {
		s.fetchMu.Lock()
		delete(s.fetches, h)
		s.fetchMu.Unlock()
		close(call.done)
	}()
	if n, err := s.Stat(h); err == nil { // stored by a Fetch that just ended
		call.n = n
		return
	}
	call.n, call.err = s.download(ctx, c, url, h, auth)
	call.abandoned = call.err != nil && ctx.Err() != nil
}

// download runs one Fetch of h, resuming from its partial file.
func (s *Store) download(ctx context.Context, c *http.Client, url string, h Hash, auth func(*http.Request)) (_ int64, err error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("blobs: fetch %s from %s: "+format, append([]any{h.Ref(), url}, a...)...)
	}
	if c == nil {
		c = http.DefaultClient
	}
	part := filepath.Join(s.tmpDir(), string(h)+partialSuffix)
	s.begin()
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.end()
		return 0, fail("%w", err)
	}
	placed := false // f and the write belong to the background flush once placed
	defer func() {
		if !placed {
			f.Close()
			s.end()
		}
	}()
	defer func() { // a failed try that got no byte leaves nothing behind
		if fi, e := os.Stat(part); err != nil && e == nil && fi.Size() == 0 {
			os.Remove(part)
		}
	}()
	dropPartial := func() { f.Close(); os.Remove(part) }
	hw := sha256.New()
	have, err := copyBuf(hw, f) // re-hash what an earlier try kept; f is now at its end
	if err != nil {
		return 0, fail("read partial file: %w", err)
	}
	for try := 0; ; try++ {
		if sumOf(hw) == h { // complete already (an earlier try ended before its rename)
			placed = true
			if err := s.placeLazy(f, h); err != nil {
				return 0, fail("%w", err)
			}
			return have, nil
		}
		size, restart, err := s.fetchRest(ctx, c, url, auth, f, hw, have)
		if restart && try == 0 { // the partial file cannot be a prefix of the blob: start over
			if err := restartPartial(f, hw); err != nil {
				return 0, fail("%w", err)
			}
			have = 0
			continue
		}
		if err != nil {
			if restart || errors.Is(err, ErrHashMismatch) {
				dropPartial()
			}
			return 0, fail("%w", err)
		}
		have = size
		if got := sumOf(hw); got != h {
			dropPartial()
			return 0, fail("got %d bytes hashing to %s: %w", have, got.Ref(), ErrHashMismatch)
		}
		placed = true
		if err := s.placeLazy(f, h); err != nil {
			return 0, fail("%w", err)
		}
		return have, nil
	}
}

func restartPartial(f *os.File, hw hash.Hash) error {
	hw.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// fetchRest makes one request for the bytes of the blob from offset have on
// and appends them to f and hw, returning the partial file's new size. restart
// reports that the partial file must be thrown away (the peer refused the
// range or answered a different one).
func (s *Store) fetchRest(ctx context.Context, c *http.Client, url string, auth func(*http.Request),
	f *os.File, hw hash.Hash, have int64) (size int64, restart bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	if auth != nil {
		auth(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		if have > 0 { // range ignored: the full blob follows
			if err := restartPartial(f, hw); err != nil {
				return 0, false, err
			}
			have = 0
		}
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, tot, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return 0, true, fmt.Errorf("asked for bytes from %d, peer sent Content-Range %q",
				have, resp.Header.Get("Content-Range"))
		}
		total = tot
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, true, fmt.Errorf("peer refused range from %d: %s", have, resp.Status)
	case http.StatusNotFound:
		return 0, false, fmt.Errorf("peer answered %s: %w", resp.Status, ErrNotFound)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return 0, false, fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	body := io.Reader(resp.Body)
	if total >= 0 { // one byte more than expected shows an overlong body
		body = io.LimitReader(resp.Body, total-have+1)
	}
	n, err := copyHashed(f, hw, body)
	switch {
	case err != nil:
		return have + n, false, fmt.Errorf("transfer broke after %d bytes (kept for resume): %w", have+n, err)
	case total >= 0 && have+n > total:
		return have + n, false, fmt.Errorf("peer sent more than %d bytes: %w", total, ErrHashMismatch)
	case total >= 0 && have+n < total:
		return have + n, false, fmt.Errorf("transfer ended after %d of %d bytes (kept for resume): %w",
			have+n, total, io.ErrUnexpectedEOF)
	}
	return have + n, false, nil
}

// parseContentRange parses "bytes <start>-<end>/<total>" (total may be "*",
// returned as -1).
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t <= end {
			return 0, 0, false
		}
		total = t
	}
	return start, total, true
}
