package blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// peer is an httptest server in front of a Store, with a hook that may take
// over a request (return true) and a log of the requests' Range headers.
type peer struct {
	src    *Store
	srv    *httptest.Server
	mu     sync.Mutex
	ranges []string
	hook   func(n int, w http.ResponseWriter, r *http.Request) bool
}

func newPeer(t *testing.T, hook func(n int, w http.ResponseWriter, r *http.Request) bool) *peer {
	p := &peer{src: newStore(t), hook: hook}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		p.ranges = append(p.ranges, r.Header.Get("Range"))
		n := len(p.ranges)
		p.mu.Unlock()
		if p.hook != nil && p.hook(n, w, r) {
			return
		}
		h, _ := ParseRef(filepath.Base(r.URL.Path))
		p.src.Serve(w, r, h, "")
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) url(h Hash) string { return p.srv.URL + "/v1/internal/blobs/" + string(h) }

func (p *peer) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

func auth(r *http.Request) { r.Header.Set("Authorization", "Bearer t0k") }

func fetch(s *Store, p *peer, h Hash) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return s.Fetch(ctx, p.srv.Client(), p.url(h), h, auth)
}

func TestFetch(t *testing.T) {
	t.Parallel()
	p := newPeer(t, nil)
	data := randBytes(1<<20+5, 7)
	h := put(t, p.src, data)
	s := newStore(t)
	if n, err := fetch(s, p, h); err != nil || n != int64(len(data)) {
		t.Fatalf("Fetch: got %d %v, want %d", n, err, len(data))
	}
	if err := s.Sync(h); err != nil { // Fetch returns before the flush
		t.Fatalf("Sync after Fetch: got %v, want nil", err)
	}
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Errorf("fetched content differs")
	}
	if n, err := fetch(s, p, h); err != nil || n != int64(len(data)) || len(p.requests()) != 1 {
		t.Errorf("second Fetch: got %d %v after %d requests, want no new request", n, err, len(p.requests()))
	}
	if _, err := fetch(s, p, hashOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fetch of a blob the peer lacks: got %v, want ErrNotFound", err)
	}
	if _, err := s.Fetch(context.Background(), p.srv.Client(), p.url(h), "../x", auth); !errors.Is(err, ErrBadHash) {
		t.Errorf("Fetch of a malformed hash: got %v, want ErrBadHash", err)
	}
	noTempFiles(t, s)
}

func TestFetchWrongBytes(t *testing.T) {
	t.Parallel()
	data := randBytes(500_000, 8)
	p := newPeer(t, func(_ int, w http.ResponseWriter, r *http.Request) bool {
		bad := bytes.Clone(data)
		bad[len(bad)-1] ^= 1
		w.Write(bad)
		return true
	})
	s := newStore(t)
	h := hashOf(data)
	if _, err := fetch(s, p, h); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Fetch of wrong bytes: got %v, want ErrHashMismatch", err)
	}
	if s.Has(h) {
		t.Errorf("wrong bytes were stored")
	}
	noTempFiles(t, s)
}

func TestFetchResume(t *testing.T) {
	t.Parallel()
	data := randBytes(2<<20+3, 9)
	const cut = 700_001
	p := newPeer(t, func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(data))
		bw.Write(data[:cut])
		bw.Flush()
		return true
	})
	h := put(t, p.src, data)
	s := newStore(t)
	if _, err := fetch(s, p, h); err == nil {
		t.Fatalf("Fetch cut off half-way: got nil error")
	}
	part := filepath.Join(s.Dir(), "tmp", string(h)+partialSuffix)
	if fi, err := os.Stat(part); err != nil || fi.Size() != cut {
		t.Fatalf("partial after the cut: got %v %v, want %d bytes", fi, err, cut)
	}
	if s.Has(h) {
		t.Fatalf("a cut-off blob was stored")
	}
	s2, err := Open(s.Dir()) // resuming survives a restart
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fetch(s2, p, h); err != nil || n != int64(len(data)) {
		t.Fatalf("resumed Fetch: got %d %v, want %d", n, err, len(data))
	}
	if got, want := p.requests(), []string{"", fmt.Sprintf("bytes=%d-", cut)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Range headers: got %q, want %q", got, want)
	}
	if got := readBlob(t, s2, h); !bytes.Equal(got, data) {
		t.Errorf("resumed content differs")
	}
	if left := tempFiles(t, s2); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestFetchBadPartial: a partial file that is not a prefix of the blob (say
// written from a lying peer) fails the whole-blob check and is dropped, and
// the next Fetch starts over.
func TestFetchBadPartial(t *testing.T) {
	t.Parallel()
	p := newPeer(t, nil)
	data := randBytes(200_000, 10)
	h := put(t, p.src, data)
	s := newStore(t)
	part := filepath.Join(s.Dir(), "tmp", string(h)+partialSuffix)
	if err := os.WriteFile(part, bytes.Repeat([]byte{'x'}, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(s, p, h); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Fetch over a bad partial: got %v, want ErrHashMismatch", err)
	}
	if n, err := fetch(s, p, h); err != nil || n != int64(len(data)) {
		t.Fatalf("Fetch after the drop: got %d %v", n, err)
	}
	if got, want := fmt.Sprint(p.requests()), "[bytes=1000- ]"; got != want {
		t.Errorf("Range headers: got %s, want %s", got, want)
	}
}

func TestFetchCoalesced(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	p := newPeer(t, func(_ int, w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	})
	data := randBytes(1<<20, 11)
	h := put(t, p.src, data)
	s := newStore(t)
	joined := make(chan Hash, 8)
	s.onJoin = func(h Hash) { joined <- h }
	type result struct {
		n   int64
		err error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			n, err := fetch(s, p, h)
			results <- result{n, err}
		}()
	}
	timeout := time.After(waitTimeout)
	for range 3 {
		select {
		case <-joined:
		case <-timeout:
			t.Fatalf("timed out waiting for 3 Fetches to join the first")
		}
	}
	close(release)
	for range 4 {
		select {
		case r := <-results:
			if r.err != nil || r.n != int64(len(data)) {
				t.Errorf("Fetch: got %d %v, want %d", r.n, r.err, len(data))
			}
		case <-timeout:
			t.Fatalf("timed out waiting for Fetches")
		}
	}
	if got := len(p.requests()); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

// TestFetchWaiterTakesOver: when the downloading caller gives up, a waiter
// whose context is live downloads instead of failing with the other's error.
func TestFetchWaiterTakesOver(t *testing.T) {
	t.Parallel()
	first := make(chan struct{})
	p := newPeer(t, func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			close(first)
			<-r.Context().Done()
			return true
		}
		return false
	})
	data := randBytes(100_000, 12)
	h := put(t, p.src, data)
	s := newStore(t)
	joined := make(chan Hash, 1)
	s.onJoin = func(h Hash) { joined <- h }
	ctx1, cancel1 := context.WithCancel(context.Background())
	err1 := make(chan error, 1)
	go func() { _, err := s.Fetch(ctx1, p.srv.Client(), p.url(h), h, auth); err1 <- err }()
	res2 := make(chan error, 1)
	timeout := time.After(waitTimeout)
	select {
	case <-first:
	case <-timeout:
		t.Fatal("timed out waiting for the first request")
	}
	go func() { _, err := fetch(s, p, h); res2 <- err }()
	select {
	case <-joined:
	case <-timeout:
		t.Fatal("timed out waiting for the second Fetch to join")
	}
	cancel1()
	for i, ch := range []chan error{err1, res2} {
		select {
		case err := <-ch:
			if (err == nil) != (i == 1) {
				t.Errorf("Fetch %d: got %v", i+1, err)
			}
		case <-timeout:
			t.Fatalf("timed out waiting for Fetch %d", i+1)
		}
	}
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
}
