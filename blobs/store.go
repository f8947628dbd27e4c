package blobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	bufSize       = 1 << 20        // copy buffer: memory per transfer stays at this
	partialSuffix = ".partial"     // dir/tmp/<hex>.partial: a resumable Fetch
	partialMaxAge = 24 * time.Hour // older partials are removed by Open
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// copyBuf copies src to dst with a pooled fixed-size buffer.
func copyBuf(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// Hide any ReaderFrom/WriterTo so the pooled buffer is what is used.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

// Info describes one stored blob.
type Info struct {
	Hash    Hash
	Size    int64
	ModTime time.Time
}

// Store is a content-addressed blob store in one directory. It is safe for
// concurrent use; set OnCorrupt before the Store is shared.
type Store struct {
	// OnCorrupt, if set, is called (synchronously) each time a stored blob is
	// found corrupt and deleted (by Open, Serve or TryServe).
	OnCorrupt func(Hash)

	dir         string
	corruptions atomic.Int64

	mu       sync.Mutex
	spares   []string // emptied files for later puts (spare.go)
	spareSeq int
	verified map[Hash]verifiedStamp // blobs hashed in this process, by file identity
	syncs    map[Hash]*syncCall     // blobs placed before they were durable (Stage, Fetch)
	busy     int                    // writes begun and not yet flushed (Stage, Fetch)
	markedAt time.Time              // when the running marker was last moved forward
	unclean  time.Time              // not zero: the previous process stopped uncleanly; its marker's time
	closed   bool
	fans     [256]atomic.Bool // fan-out directories known to exist
	now      func() time.Time // the clock of verifiedStamp.at (tests)

	fetchMu sync.Mutex
	fetches map[Hash]*fetchCall
	onJoin  func(Hash) // test hook: a Fetch joined one already running
}

// stamp identifies a version of a file for the verify cache.
type stamp struct {
	size  int64
	mtime time.Time
}

func stampOf(fi fs.FileInfo) stamp { return stamp{fi.Size(), fi.ModTime()} }

// verifiedStamp is a file version found to hash right, and when.
type verifiedStamp struct {
	stamp
	at time.Time
}

// Open opens (creating if needed) the store in dir and removes stale temp
// files left by a previous process: all of dir/tmp except Fetch partials
// younger than a day.
func Open(dir string) (*Store, error) {
	dir = filepath.Clean(dir)
	for _, d := range []string{dir, filepath.Join(dir, "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blobs: open store: %w", err)
		}
	}
	s := &Store{dir: dir, verified: map[Hash]verifiedStamp{}, syncs: map[Hash]*syncCall{}, now: time.Now, fetches: map[Hash]*fetchCall{}}
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("blobs: open store: %w", err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && isPartialName(e.Name()) && fi.Mode().IsRegular() &&
			time.Since(fi.ModTime()) < partialMaxAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("blobs: open store: remove stale temp file: %w", err)
		}
	}
	if err := s.openMarker(); err != nil {
		return nil, fmt.Errorf("blobs: open store: %w", err)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Corruptions returns how many corrupt blobs this Store has found and deleted.
func (s *Store) Corruptions() int64 { return s.corruptions.Load() }

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// path is the only place a Hash becomes a path; h must be Valid.
func (s *Store) path(h Hash) string {
	return filepath.Join(s.dir, "sha256", string(h[:2]), string(h))
}

func checkHash(h Hash) error {
	if !h.Valid() {
		return fmt.Errorf("blobs: %q is not 64 lowercase hex digits: %w", string(h), ErrBadHash)
	}
	return nil
}

func isPartialName(name string) bool {
	h, ok := strings.CutSuffix(name, partialSuffix)
	return ok && Hash(h).Valid()
}

// Put streams r into a temp file while hashing it, fsyncs it and renames it
// into place (then fsyncs the directory). If want is not empty the content
// must hash to want, else the error wraps ErrHashMismatch and nothing is
// stored. Putting content that is already stored replaces the file with the
// freshly written copy, which also repairs a damaged one.
func (s *Store) Put(r io.Reader, want Hash) (Hash, int64, error) {
	f, h, n, err := s.write(r, want)
	if err != nil {
		return "", 0, fmt.Errorf("blobs: put: %w", err)
	}
	if err := s.commit(f, h); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("blobs: put %s: %w", h.Ref(), err)
	}
	return h, n, nil
}

// write streams r into a new temp file while hashing it and checks the hash
// against want (if not empty). On success the caller owns the open file; on
// failure nothing is left behind.
func (s *Store) write(r io.Reader, want Hash) (*os.File, Hash, int64, error) {
	if want != "" {
		if err := checkHash(want); err != nil {
			return nil, "", 0, err
		}
	}
	f, err := s.tempFile()
	if err != nil {
		return nil, "", 0, err
	}
	fail := func(err error) (*os.File, Hash, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, "", 0, err
	}
	hw := sha256.New()
	n, err := copyHashed(f, hw, r)
	if err != nil {
		return fail(err)
	}
	got := sumOf(hw)
	if want != "" && got != want {
		return fail(fmt.Errorf("content is %s, want %s: %w", got.Ref(), want.Ref(), ErrHashMismatch))
	}
	return f, got, n, nil
}

// PutFile stores a copy of the file at path.
func (s *Store) PutFile(path string) (Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("blobs: put file: %w", err)
	}
	defer f.Close()
	return s.Put(f, "")
}

// commit makes the fully written, verified temp file f the blob h, durable
// before it is visible: fsync, rename into place, fsync the directory,
// remember it as verified. It closes f.
func (s *Store) commit(f *os.File, h Hash) error {
	if err := f.Sync(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	newFan, err := s.place(f.Name(), h)
	if err != nil {
		return err
	}
	if err := s.syncEntry(h, newFan); err != nil {
		return err
	}
	s.markVerified(h, stampOf(fi))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func sumOf(hw hash.Hash) Hash { return Hash(hex.EncodeToString(hw.Sum(nil))) }

// Has reports whether blob h is stored (without verifying it).
func (s *Store) Has(h Hash) bool {
	_, err := s.Stat(h)
	return err == nil
}

// Stat returns the size of blob h, or an error wrapping ErrNotFound.
func (s *Store) Stat(h Hash) (int64, error) {
	if err := checkHash(h); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(h))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("blobs: %s: %w", h.Ref(), ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("blobs: stat %s: %w", h.Ref(), err)
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("blobs: %s is not a regular file: %w", h.Ref(), ErrNotFound)
	}
	return fi.Size(), nil
}

// Delete removes blob h; a blob that is not there is not an error. Readers
// that already opened it keep reading the old file.
func (s *Store) Delete(h Hash) error {
	if err := checkHash(h); err != nil {
		return err
	}
	s.forget(h)
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobs: delete %s: %w", h.Ref(), err)
	}
	return nil
}

// List returns every stored blob, sorted by hash. Files that are not named
// like blobs in the right fan-out directory are ignored.
func (s *Store) List() ([]Info, error) {
	var out []Info
	err := s.walk(func(h Hash, e fs.DirEntry) (bool, error) {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil // deleted meanwhile
		} else if err != nil {
			return false, fmt.Errorf("blobs: list: %w", err)
		}
		out = append(out, Info{Hash: h, Size: fi.Size(), ModTime: fi.ModTime()})
		return true, nil
	})
	return out, err
}

// Empty reports whether the store holds no blob (it stops at the first).
func (s *Store) Empty() (bool, error) {
	empty := true
	err := s.walk(func(Hash, fs.DirEntry) (bool, error) { empty = false; return false, nil })
	return empty && err == nil, err
}

// walk calls fn for every stored blob's file, in hash order, while fn
// says to go on.
func (s *Store) walk(fn func(h Hash, e fs.DirEntry) (bool, error)) error {
	root := filepath.Join(s.dir, "sha256")
	fans, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("blobs: list: %w", err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, fan.Name()))
		if err != nil {
			return fmt.Errorf("blobs: list: %w", err)
		}
		for _, e := range ents {
			h := Hash(e.Name())
			if !h.Valid() || string(h[:2]) != fan.Name() || !e.Type().IsRegular() {
				continue
			}
			if more, err := fn(h, e); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// Usage returns the number of stored blobs and their total size in bytes.
func (s *Store) Usage() (count int, bytes int64, err error) {
	list, err := s.List()
	if err != nil {
		return 0, 0, err
	}
	for _, in := range list {
		bytes += in.Size
	}
	return len(list), bytes, nil
}
