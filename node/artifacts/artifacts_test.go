package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/nodetest/fakeledger"
	"github.com/ourci/ourci/raftfsm"
)

type fakeMesh struct {
	alive map[string]bool
	urls  map[string]string
}

func (m fakeMesh) Alive(n string) bool { return m.alive[n] }
func (m fakeMesh) URL(n string) (string, bool) {
	u, ok := m.urls[n]
	return u, ok
}

type recorded struct {
	mu      sync.Mutex
	added   []string
	dropped []string
}

func (r *recorded) Added(h blobs.Hash, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added = append(r.added, string(h))
}
func (r *recorded) Dropped(h blobs.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped = append(r.dropped, string(h))
}

func store(t *testing.T) *blobs.Store {
	t.Helper()
	s, err := blobs.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hashOf(b []byte) blobs.Hash {
	h := sha256.Sum256(b)
	return blobs.Hash(hex.EncodeToString(h[:]))
}

// holder serves body (or, corrupt, other bytes) as a peer's copy and
// counts its requests.
func holder(t *testing.T, body []byte, corrupt bool) (*httptest.Server, *int) {
	n := new(int)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
		b := body
		if corrupt {
			b = bytes.ToUpper(body)
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestEnsure: a copy here is used as it is; a missing one comes from a
// live holder before a dead one, a holder that sends bytes of another
// hash is passed over, and the copy is recorded once flushed; a blob the
// ledger does not know is not found, and one whose only recorded holder
// is this node is said to be gone.
func TestEnsure(t *testing.T) {
	body := []byte("firmware image v1")
	h := hashOf(body)
	good, goodHits := holder(t, body, false)
	bad, badHits := holder(t, body, true)
	l := fakeledger.New()
	if _, err := l.Apply(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(h), Size: int64(len(body)), Node: "dead"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bad", "good"} {
		l.Apply(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(h), Size: int64(len(body)), Node: n}})
	}
	var wg sync.WaitGroup
	rec := &recorded{}
	f := &Fetcher{Self: "me", Store: store(t), Ledger: l, Record: rec, HTTP: http.DefaultClient, Auth: func(*http.Request) {},
		Members: fakeMesh{alive: map[string]bool{"bad": true, "good": true}, urls: map[string]string{"bad": bad.URL, "good": good.URL, "dead": "http://127.0.0.1:1"}},
		Go:      func(fn func()) { wg.Add(1); go func() { defer wg.Done(); fn() }() }, Log: quiet(), RecordWait: 50 * time.Millisecond}
	ctx := context.Background()
	if err := f.Ensure(ctx, h); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	wg.Wait()
	if *badHits != 1 || *goodHits != 1 {
		t.Errorf("requests: got %d to the holder of a corrupt copy and %d to the good one, want 1 each (the dead holder, listed first, last)", *badHits, *goodHits)
	}
	if !f.Store.Has(h) || len(rec.added) != 1 || rec.added[0] != string(h) {
		t.Errorf("after the fetch: has %t, recorded %v; want the copy here and recorded once", f.Store.Has(h), rec.added)
	}
	if err := f.Ensure(ctx, h); err != nil || *goodHits != 1 {
		t.Errorf("a second ensure: got %v after %d fetches, want the local copy used", err, *goodHits)
	}

	other := hashOf([]byte("never put"))
	if err := f.Ensure(ctx, other); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("a blob the ledger does not know: got %v, want blobs.ErrNotFound", err)
	}
	mine := []byte("only here")
	l.Apply(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(hashOf(mine)), Size: int64(len(mine)), Node: "me"}})
	if err := f.Ensure(ctx, hashOf(mine)); !errors.Is(err, ErrNoHolder) || !strings.Contains(err.Error(), "names only me") {
		t.Errorf("a copy recorded only here, gone: got %v, want ErrNoHolder saying the ledger names only me", err)
	}
}

// TestCollect: a copy the ledger does not know is deleted once older than
// Grace (not before: its record may be in flight); a copy the ledger knows
// stays; a record of a copy this node no longer has is withdrawn.
func TestCollect(t *testing.T) {
	s := store(t)
	put := func(b string) blobs.Hash {
		h, _, err := s.Put(strings.NewReader(b), "")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	known, young, old := put("known"), put("young"), put("old")
	l := fakeledger.New()
	gone := hashOf([]byte("gone from disk"))
	for _, h := range []blobs.Hash{known, gone} {
		l.Apply(raftfsm.Command{Type: raftfsm.CmdBlobAdded, BlobAdded: &raftfsm.BlobAdded{Hash: string(h), Size: 4, Node: "me"}})
	}
	now := time.Now()
	for _, h := range []blobs.Hash{old, known} {
		path := filepath.Join(s.Dir(), "sha256", string(h)[:2], string(h)) // the store's layout
		if err := os.Chtimes(path, now.Add(-2*Grace), now.Add(-2*Grace)); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorded{}
	c := &Collector{Self: "me", Store: s, Ledger: l, Record: rec, Now: func() time.Time { return now }, Log: quiet()}
	if got := c.Collect(); got != 1 {
		t.Errorf("deleted: got %d, want 1 (the old unknown copy)", got)
	}
	for h, want := range map[blobs.Hash]bool{known: true, young: true, old: false} {
		if s.Has(h) != want {
			t.Errorf("%s: has %t, want %t", h, s.Has(h), want)
		}
	}
	if len(rec.dropped) != 1 || rec.dropped[0] != string(gone) {
		t.Errorf("records withdrawn: got %v, want [%s]", rec.dropped, gone)
	}
}
