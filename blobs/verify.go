package blobs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Open returns blob h for reading, positioned at its start; the caller
// closes it. The first Open of a file version (size and mtime) in this
// process hashes the whole file; a file that does not match h is deleted and
// the error wraps ErrCorrupt. Later Opens of the same version trust that check.
func (s *Store) Open(h Hash) (*os.File, error) {
	f, _, err := s.open(h, true)
	return f, err
}

// open opens blob h; with verify it hashes the file unless this version of it
// was already verified in this process.
func (s *Store) open(h Hash, verify bool) (*os.File, fs.FileInfo, error) {
	if err := checkHash(h); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("blobs: %s: %w", h.Ref(), ErrNotFound)
	} else if err != nil {
		return nil, nil, fmt.Errorf("blobs: open %s: %w", h.Ref(), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("blobs: open %s: %w", h.Ref(), err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("blobs: %s is not a regular file: %w", h.Ref(), ErrNotFound)
	}
	if !verify || s.isVerified(h, stampOf(fi)) {
		return f, fi, nil
	}
	hw := sha256.New()
	if _, err := copyBuf(hw, f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("blobs: verify %s: %w", h.Ref(), err)
	}
	if got := sumOf(hw); got != h {
		s.dropCorrupt(h, f)
		f.Close()
		return nil, nil, fmt.Errorf("blobs: %s: file content is %s, deleted: %w", h.Ref(), got.Ref(), ErrCorrupt)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("blobs: open %s: %w", h.Ref(), err)
	}
	s.markVerified(h, stampOf(fi))
	return f, fi, nil
}

// verifiedAt returns when this version (st) of blob h was last hashed in
// this process; false if it was not.
func (s *Store) verifiedAt(h Hash, st stamp) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.verified[h]
	if !ok || v.size != st.size || !v.mtime.Equal(st.mtime) {
		return time.Time{}, false
	}
	return v.at, true
}

func (s *Store) isVerified(h Hash, st stamp) bool {
	_, ok := s.verifiedAt(h, st)
	return ok
}

// verifiedWithin reports whether this version of blob h was hashed in this
// process no longer than d ago.
func (s *Store) verifiedWithin(h Hash, st stamp, d time.Duration) bool {
	at, ok := s.verifiedAt(h, st)
	return ok && s.now().Sub(at) <= d
}

func (s *Store) markVerified(h Hash, st stamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verified[h] = verifiedStamp{stamp: st, at: s.now()}
}

func (s *Store) forget(h Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.verified, h)
	delete(s.syncs, h)
}

// dropCorrupt deletes blob h, whose open file f was found not to match,
// counts it and calls OnCorrupt. The path is only removed if it still names
// the same file as f: a good copy renamed into place meanwhile is kept.
func (s *Store) dropCorrupt(h Hash, f *os.File) {
	s.forget(h)
	if fi, err := f.Stat(); err == nil {
		if cur, err := os.Stat(s.path(h)); err == nil && os.SameFile(fi, cur) {
			os.Remove(s.path(h))
		}
	}
	s.corruptions.Add(1)
	if s.OnCorrupt != nil {
		s.OnCorrupt(h)
	}
}
