package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node/api"
)

// blobMeasure moves one large blob node to node and many 64 KiB blobs,
// with the floors beneath each measured in the same run.
func (r *run) blobMeasure(ctx context.Context, m *mesh) error {
	if err := r.bigBlob(ctx, m); err != nil {
		return err
	}
	return r.smallBlobs(ctx, m)
}

// bigBlob: node a stores the blob (PUT /v1/blobs); node b is asked to pull
// it (the replication call): it fetches it over the mutual-TLS peer port
// from a, verifies the SHA-256 while streaming, renames it into its store
// and answers once it is flushed to disk (a, which verified its copy at the
// put, serves it without hashing it again). The approach of e2e/blob_bench_test.go, with
// in-process nodes. Floors, on the same file in the same run: SHA-256 on
// one core, a plain loopback TCP copy, a copy to disk with fsync.
func (r *run) bigBlob(ctx context.Context, m *mesh) error {
	size := int64(r.o.BlobMiB) << 20
	mib := float64(r.o.BlobMiB)
	r.progress("blobs: %d MiB node to node", r.o.BlobMiB)
	file := filepath.Join(r.dir, "blob.bin")
	defer os.Remove(file)
	sum, err := WriteRandomFile(file, size)
	if err != nil {
		return err
	}
	l, err := m.waitLeader(ctx)
	if err != nil {
		return err
	}
	a, b := (l+1)%3, (l+2)%3
	// A put whose record meets a leadership change (503 no_leader) is
	// made again (the same bytes: the same blob), bounded and noted.
	t0 := time.Now()
	var info api.BlobInfo
	for tries := 1; ; tries++ {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		info, err = m.client(a).PutBlob(ctx, f, nil)
		f.Close()
		if err == nil {
			if tries > 1 {
				r.note(MBlobs, "the %d MiB put was made %d times: the leader changed while it was recorded (counted in its time)", r.o.BlobMiB, tries)
			}
			break
		}
		if !api.IsCode(err, api.CodeNoLeader) || time.Since(t0) > scaled(30*time.Second) {
			return fmt.Errorf("put (try %d): %w", tries, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	putDur := time.Since(t0)
	if info.Ref != "sha256:"+sum {
		return fmt.Errorf("put: node stored %s, the file is %s", info.Ref, sum)
	}
	// As the leader's replication does: the puller first waits until its
	// replica reaches the index that recorded the blob.
	if l, err = m.waitLeader(ctx); err != nil {
		return err
	}
	idx := m.nodes[l].FSM().Index()
	t0 = time.Now()
	if err := m.pull(ctx, b, sum, idx); err != nil {
		return err
	}
	pullDur := time.Since(t0)
	if !m.nodes[b].BlobStore().Has(blobs.Hash(sum)) {
		return fmt.Errorf("node %s does not hold the blob after the pull", m.name(b))
	}
	hashDur, err := HashFile(file)
	if err != nil {
		return err
	}
	tcpDur, err := LoopbackCopy(file)
	if err != nil {
		return err
	}
	diskDur, err := DiskCopy(file, filepath.Join(r.dir, "blob.copy"))
	if err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return mib / d.Seconds() }
	node, sha := rate(pullDur), rate(hashDur)
	r.row(Row{Key: "big_blob_mibps", Measure: fmt.Sprintf("%s blob node→node, verified", sizeName(r.o.BlobMiB)), Unit: "MiB/s", OurCI: node, Floor: ptr(sha), Ratio: ptr(node / sha),
		Target: "≥ 0.75x floor", Result: passIf(node >= 0.75*sha), FloorIs: "SHA-256 of the same file, one core"})
	const M = MBlobs
	r.note(M, "%s → %s: %.0f MiB/s (%.2f s): fetch over the TLS peer port, verify SHA-256 while streaming, rename, flush to disk (the sender, which verified its copy at the put, sends it without hashing it again)", m.name(a), m.name(b), node, pullDur.Seconds())
	r.note(M, "put into %s (hash, rename, then flush ∥ ledger record): %.0f MiB/s (%.2f s)", m.name(a), rate(putDur), putDur.Seconds())
	r.note(M, "floors on the same file: SHA-256 %.0f MiB/s; loopback TCP copy %.0f MiB/s; copy to disk + fsync %.0f MiB/s", sha, rate(tcpDur), rate(diskDur))
	r.note(M, "node→node / disk copy + fsync: %.2f; / loopback TCP: %.2f; / SHA-256: %.2f", node/rate(diskDur), node/rate(tcpDur), node/sha)
	return nil
}

func sizeName(mib int) string {
	if mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

// pull asks node i to fetch a blob from its holders and waits until stored.
func (m *mesh) pull(ctx context.Context, i int, hash string, index uint64) error {
	u := "https://" + m.cfgs[i].Raft + "/v1/internal/blobs/" + hash + "/pull?index=" + strconv.FormatUint(index, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.secret.ClusterToken())
	resp, err := m.peerHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pull on %s: %s: %s", m.name(i), resp.Status, body)
	}
	return nil
}

// smallBlobs: workers in parallel, each putting a fresh 64 KiB blob on one
// node and fetching it by hash from the next (which fetches it from the
// holder, verifies, stores and serves it), checking the hash of what came
// back. The floor: per blob, what must touch the disk and the CPU anyway:
// two fsynced 64 KiB files renamed into place (one per node) and two
// SHA-256 passes, at the same concurrency.
func (r *run) smallBlobs(ctx context.Context, m *mesh) error {
	const size = 64 << 10
	total, workers := r.o.SmallBlobs, r.o.BlobWorkers
	r.progress("blobs: %d × 64 KiB, put on one node and fetched from another, %d workers", total, workers)
	var (
		next, notYet atomic.Int64
		reput        atomic.Int64 // puts made again after a leadership change
		wg           sync.WaitGroup
		mu           sync.Mutex
		firstErr     error
		lat, putLat  dist
	)
	leader, err := m.waitLeader(ctx)
	if err != nil {
		return err
	}
	idx0 := m.nodes[leader].FSM().Index()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.NewChaCha8([32]byte{byte(w), byte(w >> 8), 7})
			data := make([]byte, size)
			for {
				i := next.Add(1)
				if i > int64(total) || ctx.Err() != nil {
					return
				}
				rng.Read(data)
				t0 := time.Now()
				put, err := m.putGet(ctx, int(i)%3, (int(i)+1)%3, data, &notYet, &reput)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, time.Since(t0))
				putLat = append(putLat, put)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	elapsed := time.Since(start)
	rate := float64(total) / elapsed.Seconds()
	entries := m.nodes[leader].FSM().Index() - idx0

	floorN := min(total, 2000)
	frate, err := blobFloor(filepath.Join(r.dir, "floor-blobs"), floorN, workers, size)
	if err != nil {
		return err
	}
	r.row(Row{Key: "small_blobs_per_s", Measure: "64 KiB blobs, put + verified fetch", Unit: "blobs/s", OurCI: rate, Floor: ptr(frate), Ratio: ptr(rate / frate),
		Target: "≥ 1000 blobs/s", Result: passIf(rate >= 1000), FloorIs: "2 fsynced writes + renames + 2 SHA-256 per blob, same concurrency"})
	r.note(MBlobs, "%d blobs by %d workers: %.0f/s; one put + fetch: %s", total, workers, rate, lat.summary())
	r.note(MBlobs, "of which the put (stored, flushed, recorded): %s", putLat.summary())
	r.note(MBlobs, "%d Raft entries for %d blobs (the put's holder record, the fetching node's): one every %.1f ms, %.1f records each",
		entries, total, float64(elapsed.Milliseconds())/float64(max(entries, 1)), 2*float64(total)/float64(max(entries, 1)))
	r.note(MBlobs, "fetches answered 404 although they passed the put's index (retried after 1 ms): %d", notYet.Load())
	if k := reput.Load(); k > 0 {
		r.note(MBlobs, "puts made again because the leader changed while recording them (counted in their latency): %d", k)
	}
	r.note(MBlobs, "floor: %d × (2 × (write 64 KiB, fsync, rename, fsync dir) + 2 × SHA-256) by %d workers: %.0f/s", floorN, workers, frate)
	return nil
}

// putGet stores data on node a and fetches it by hash from node b, passing
// the index the put returned (GET ?index=), as blob get --index does.
// It returns how long the put took.
//
// A put whose record meets a leadership change (503 no_leader: the blob
// is stored, its record not committed) is made again, as the CLI would
// after a moment: the blob is addressed by its hash, so the second put is
// the same blob. Bounded (scaled); counted in reput.
func (m *mesh) putGet(ctx context.Context, a, b int, data []byte, notYet, reput *atomic.Int64) (time.Duration, error) {
	sum := sha256.Sum256(data)
	hx := hex.EncodeToString(sum[:])
	t0 := time.Now()
	limit := scaled(30 * time.Second)
	var info api.BlobInfo
	var err error
	for {
		info, err = m.client(a).PutBlob(ctx, bytes.NewReader(data), nil)
		if err == nil || !api.IsCode(err, api.CodeNoLeader) || time.Since(t0) > limit {
			break
		}
		reput.Add(1)
		select {
		case <-ctx.Done():
			return time.Since(t0), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	put := time.Since(t0)
	if err != nil {
		return put, fmt.Errorf("put on %s: %w", m.name(a), err)
	}
	if info.Ref != "sha256:"+hx {
		return put, fmt.Errorf("put on %s stored %s, want sha256:%s", m.name(a), info.Ref, hx)
	}
	deadline := time.Now().Add(scaled(10 * time.Second))
	for {
		rc, err := m.client(b).GetBlobAt(ctx, "sha256:"+hx, "", info.Index)
		if err != nil {
			if api.IsCode(err, api.CodeNotFound) && time.Now().Before(deadline) {
				notYet.Add(1)
				time.Sleep(time.Millisecond)
				continue
			}
			return put, fmt.Errorf("get from %s: %w", m.name(b), err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return put, fmt.Errorf("get from %s: %w", m.name(b), err)
		}
		if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sum[:]) {
			return put, fmt.Errorf("get from %s: wrong body (%d bytes)", m.name(b), n)
		}
		return put, nil
	}
}

func blobFloor(dir string, n, workers, size int) (float64, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.NewChaCha8([32]byte{byte(w), 9})
			data := make([]byte, size)
			for next.Add(1) <= int64(n) {
				rng.Read(data)
				for copyNo := 0; copyNo < 2; copyNo++ {
					if err := fsyncedPut(dir, data); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fsyncedPut is the least a verified blob write does: hash, write a temp
// file, fsync, rename into a fan-out directory, fsync the directory.
func fsyncedPut(dir string, data []byte) error {
	sum := sha256.Sum256(data)
	hx := hex.EncodeToString(sum[:])
	f, err := os.CreateTemp(filepath.Join(dir, "tmp"), "put-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	sub := filepath.Join(dir, hx[:2])
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(sub, hx+"."+filepath.Base(f.Name()))); err != nil {
		return err
	}
	d, err := os.Open(sub)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteRandomFile writes size deterministic pseudo-random bytes to path and
// returns their SHA-256 in hex.
func WriteRandomFile(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LoopbackCopy sends the file over a loopback TCP connection to a reader
// that discards it: the transport floor for a node-to-node copy.
func LoopbackCopy(path string) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, c)
		c.Close()
		done <- err
	}()
	start := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		c.Close()
		return 0, err
	}
	_, err = io.Copy(c, f)
	f.Close()
	c.Close()
	if err != nil {
		return 0, err
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// DiskCopy copies the file to dst and fsyncs it: the storage floor under
// every blob write.
func DiskCopy(src, dst string) (time.Duration, error) {
	defer os.Remove(dst)
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, in, make([]byte, 1<<20)); err != nil {
		return 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// HashFile times SHA-256 of the file on one core.
func HashFile(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
