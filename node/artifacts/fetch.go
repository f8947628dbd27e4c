package artifacts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/raftfsm"
)

// ErrNoHolder means no live node holds a blob the ledger knows.
var ErrNoHolder = errors.New("node: no live node holds the blob")

// Ledger is the node's replica.
type Ledger interface {
	Read(fn func(s *raftfsm.State, index uint64))
	Watch() (uint64, <-chan struct{})
}

// Members is the mesh as this node sees it.
type Members interface {
	// Alive reports whether gossip sees node alive.
	Alive(node string) bool
	// URL is a live member's peer API (false: not reachable).
	URL(node string) (string, bool)
}

// Recorder tells the ledger, in the background and retrying, what this
// node now holds or lost.
type Recorder interface {
	Added(h blobs.Hash, size int64)
	Dropped(h blobs.Hash)
}

// Fetcher fetches copies from the holders the ledger names.
type Fetcher struct {
	Self    string // this node's name
	Store   *blobs.Store
	Ledger  Ledger
	Members Members
	Record  Recorder
	// HTTP reaches peers (mutual TLS); Auth signs a request to one.
	HTTP *http.Client
	Auth func(*http.Request)
	// Go runs f in the background, tracked by the node (it waits for it
	// at shutdown).
	Go  func(f func())
	Log *slog.Logger
	// RecordWait bounds how long Ensure waits for the ledger's record of
	// a blob put through another node a moment ago (0: 3 s).
	RecordWait time.Duration
}

// Ensure makes sure this node holds a verified copy of h: a corrupt local
// copy is dropped, a missing one fetched from a holder the ledger names
// (live ones first), verified while streaming, and recorded once it is on
// stable storage. blobs.ErrNotFound: the ledger knows no such blob;
// ErrNoHolder: no holder could send it.
func (f *Fetcher) Ensure(ctx context.Context, h blobs.Hash) error {
	file, err := f.Store.Open(h)
	if err == nil {
		file.Close()
		return nil
	}
	if !errors.Is(err, blobs.ErrCorrupt) && !errors.Is(err, blobs.ErrNotFound) {
		return err // a corrupt copy was deleted and reported (OnCorrupt): fetch anew
	}
	holders, size, err := f.holders(ctx, h)
	if err != nil {
		return err
	}
	alive := make(map[string]bool, len(holders)) // asked once per holder, not per comparison
	for _, h := range holders {
		alive[h] = f.Members.Alive(h)
	}
	slices.SortStableFunc(holders, func(a, b string) int {
		la, lb := alive[a], alive[b]
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
		if holder == f.Self {
			continue
		}
		base, ok := f.Members.URL(holder)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: not reachable", holder))
			continue
		}
		url := strings.TrimRight(base, "/") + "/v1/internal/blobs/" + string(h)
		got, err := f.Store.Fetch(ctx, f.HTTP, url, h, f.Auth)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", holder, err))
			continue
		}
		if got != size {
			f.Log.Warn("fetched blob size differs from the ledger's", "hash", h, "size", got, "ledger_size", size)
		}
		// The copy serves from now on; the ledger learns of it only once
		// it is on stable storage, so a holder record never names a copy
		// a crash could take back.
		f.Go(func() {
			if err := f.Store.Sync(h); err != nil {
				f.Log.Warn("a fetched blob copy could not be flushed to disk: dropped", "hash", h, "err", err)
				return
			}
			f.Record.Added(h, got)
		})
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: %s: the ledger names only %s as its holder, and its copy is gone", ErrNoHolder, h.Ref(), f.Self)
	}
	return fmt.Errorf("%w: %s: %w", ErrNoHolder, h.Ref(), errors.Join(errs...))
}

// holders waits a little for the ledger's record of h (a blob put through
// another node a moment ago may not have reached this replica yet) and
// returns its holders and size.
func (f *Fetcher) holders(ctx context.Context, h blobs.Hash) ([]string, int64, error) {
	wait := f.RecordWait
	if wait <= 0 {
		wait = 3 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		_, ch := f.Ledger.Watch()
		var holders []string
		var size int64
		f.Ledger.Read(func(s *raftfsm.State, _ uint64) {
			if b := s.Blobs[string(h)]; b != nil {
				holders, size = slices.Clone(b.Holders), b.Size
			}
		})
		if holders != nil {
			return holders, size, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil, 0, fmt.Errorf("%w: the ledger knows no blob %s", blobs.ErrNotFound, h.Ref())
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}
