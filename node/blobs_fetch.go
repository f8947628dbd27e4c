package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/runner"
	"github.com/ourci/ourci/raftfsm"
)

// The blob routes are node/httpapi's (blobs.go); the node is their Blobs:
// its store, and copies fetched from the holders the ledger names.

// ErrNoHolder means no live node holds a blob the ledger knows.
var ErrNoHolder = errors.New("node: no live node holds the blob")

// blobService is httpapi.Blobs.
type blobService struct{ n *Node }

func (b blobService) Name() string    { return b.n.cfg.Name }
func (b blobService) MaxBytes() int64 { return b.n.cfg.MaxBlobBytes }
func (b blobService) Stage(body io.Reader, want blobs.Hash) (blobs.Hash, int64, error) {
	return b.n.blobs.Stage(body, want)
}
func (b blobService) Sync(h blobs.Hash) error { return b.n.blobs.Sync(h) }
func (b blobService) Has(h blobs.Hash) bool   { return b.n.blobs.Has(h) }
func (b blobService) Ensure(ctx context.Context, h blobs.Hash) error {
	return b.n.ensureBlob(ctx, h)
}
func (b blobService) Serve(w http.ResponseWriter, r *http.Request, h blobs.Hash, name string) error {
	return b.n.blobs.TryServe(b.n.countServed(w, "client"), r, h, path.Base(name)) // metrics: bytes served
}
func (b blobService) ServeToPeer(w http.ResponseWriter, r *http.Request, h blobs.Hash) {
	b.n.blobs.ServeToVerifier(b.n.countServed(w, "peer"), r, h) // metrics: bytes served
}
func (b blobService) Lost(h blobs.Hash) {
	b.n.goFunc(func() { b.n.reportAsync(api.Report{Kind: api.ReportBlobDropped, Node: b.n.cfg.Name, Hash: string(h)}) })
}

// StoreError tells the health probe of a failure to write, and names a
// full disk with what to do.
func (b blobService) StoreError(err error) error {
	b.n.noteWriteError(err)
	if isNoSpace(err) {
		return &httpapi.NoSpaceError{Msg: fmt.Sprintf("no space on %s: %s; free space in its data directory (%s), or use another node", b.n.cfg.Name, runner.ErrText(err), b.n.cfg.DataDir)}
	}
	return err
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

// reportAsync delivers a report in the background, retrying.
func (n *Node) reportAsync(rep api.Report) {
	n.runner.Report(rep)
}
