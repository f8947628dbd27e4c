package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/artifacts"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/runner"
)

// The blob routes are node/httpapi's (blobs.go); the node is their Blobs:
// its store, and copies fetched from the holders the ledger names
// (node/artifacts).

// ErrNoHolder means no live node holds a blob the ledger knows.
var ErrNoHolder = artifacts.ErrNoHolder

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
	return b.n.fetcher.Ensure(ctx, h)
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

// meshView is artifacts.Members: gossip's view.
type meshView struct{ n *Node }

func (m meshView) Alive(node string) bool {
	_, ok := memberMap(m.n.gossip.Members())[node]
	return ok
}
func (m meshView) URL(node string) (string, bool) { return m.n.memberURL(node) }

// copyRecorder is artifacts.Recorder: the node's reports, retried in the
// background through its write path.
type copyRecorder struct{ n *Node }

func (r copyRecorder) Added(h blobs.Hash, size int64) {
	r.n.reportAsync(api.Report{Kind: api.ReportBlobAdded, Node: r.n.cfg.Name, Hash: string(h), Size: size})
}
func (r copyRecorder) Dropped(h blobs.Hash) {
	r.n.reportAsync(api.Report{Kind: api.ReportBlobDropped, Node: r.n.cfg.Name, Hash: string(h)})
}

// reportAsync delivers a report in the background, retrying.
func (n *Node) reportAsync(rep api.Report) {
	n.runner.Report(rep)
}
