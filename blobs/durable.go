package blobs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// syncCall is the background flush of one blob that was put in place before
// it reached stable storage (Stage, Fetch); done closes when err is set.
type syncCall struct {
	done chan struct{}
	err  error
}

// Stage stores r like Put, verified against want the same way, but returns
// as soon as the blob is in place: readable and servable from then on, its
// bytes and name flushed to stable storage in the background. Sync waits for
// that flush; until it returned nil, a crash may lose or tear the file, which
// Open and the serving paths then find by its hash (ErrCorrupt), never
// serving wrong bytes. A caller that records the blob as held, or tells
// anyone it is safe, calls Sync first.
func (s *Store) Stage(r io.Reader, want Hash) (Hash, int64, error) {
	s.begin()
	f, h, n, err := s.write(r, want)
	if err != nil {
		s.end()
		return "", 0, fmt.Errorf("blobs: put: %w", err)
	}
	if err := s.placeLazy(f, h); err != nil {
		return "", 0, fmt.Errorf("blobs: put %s: %w", h.Ref(), err)
	}
	return h, n, nil
}

// Sync waits until blob h, as last put in place by this process, is on
// stable storage: its bytes and its directory entry. For a blob not staged
// by this process it flushes the file and its directory now. An error means
// the copy's durability is unknown: the blob is deleted, and the error wraps
// ErrNotFound if it was not there at all.
func (s *Store) Sync(h Hash) error {
	if err := checkHash(h); err != nil {
		return err
	}
	s.mu.Lock()
	call := s.syncs[h]
	s.mu.Unlock()
	if call != nil {
		<-call.done
		return call.err
	}
	f, err := os.Open(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobs: sync %s: %w", h.Ref(), ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("blobs: sync %s: %w", h.Ref(), err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blobs: sync %s: %w", h.Ref(), err)
	}
	if err := s.syncEntry(h, false); err != nil {
		return fmt.Errorf("blobs: sync %s: %w", h.Ref(), err)
	}
	return nil
}

// placeLazy puts the verified, fully written temp file f in place as blob h
// without waiting for the disk, and flushes it in the background (Sync waits
// for that). It owns f from here on, and ends the write the caller began.
func (s *Store) placeLazy(f *os.File, h Hash) error {
	fail := func(err error) error {
		f.Close()
		s.end()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	newFan, err := s.place(f.Name(), h)
	if err != nil {
		return fail(err)
	}
	call := &syncCall{done: make(chan struct{})}
	s.mu.Lock()
	s.syncs[h] = call
	s.mu.Unlock()
	s.markVerified(h, stampOf(fi))
	go func() {
		defer close(call.done)
		defer s.end()
		call.err = s.flush(f, h, newFan)
		if call.err != nil {
			call.err = fmt.Errorf("blobs: flush %s: %w", h.Ref(), call.err)
			// Its content on disk is unknown now: drop the copy.
			s.forget(h)
			if cur, err := os.Stat(s.path(h)); err == nil && os.SameFile(fi, cur) {
				os.Remove(s.path(h))
			}
		}
	}()
	return nil
}

// flush makes the placed file f durable: its bytes, then the directory
// entries that lead to it. It closes f.
func (s *Store) flush(f *os.File, h Hash, newFan bool) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.syncEntry(h, newFan)
}

// syncEntry flushes the directory entries that lead to blob h: its fan-out
// directory's, and the fan-out directory's own in its parent when newFan.
func (s *Store) syncEntry(h Hash, newFan bool) error {
	fan := filepath.Dir(s.path(h))
	if newFan {
		if err := syncDir(filepath.Dir(fan)); err != nil {
			return err
		}
	}
	return syncDir(fan)
}

// place renames the temp file tmp into place as blob h, creating its
// fan-out directory first if needed; newFan reports that it did (its parent
// then needs a flush for the new entry to be durable). Fan-out directories
// known to exist are not asked for again; one removed behind the store's
// back is made anew.
func (s *Store) place(tmp string, h Hash) (newFan bool, err error) {
	fan := fanIndex(h)
	for try := 0; ; try++ {
		if !s.fans[fan].Load() {
			switch err := os.Mkdir(filepath.Dir(s.path(h)), 0o700); {
			case err == nil:
				newFan = true
			case !errors.Is(err, fs.ErrExist):
				return false, err
			}
			s.fans[fan].Store(true)
		}
		err := os.Rename(tmp, s.path(h))
		if errors.Is(err, fs.ErrNotExist) && try == 0 {
			if _, serr := os.Stat(tmp); serr == nil { // the fan is what is missing
				s.fans[fan].Store(false)
				continue
			}
		}
		return newFan, err
	}
}

// fanIndex is the number of blob h's fan-out directory, its first two hex
// digits; h must be Valid.
func fanIndex(h Hash) int {
	n, _ := strconv.ParseUint(string(h[:2]), 16, 8)
	return int(n)
}

// The marker file dir/running exists while a process has the store open
// and is removed by Close. Its modification time is a moment at which every
// blob written before it was on stable storage; it is moved forward when the
// store falls quiet. Found at Open, it tells of an unclean stop: blobs
// written since its time may be torn or missing.
const (
	runningMarker = "running"
	markerEvery   = 10 * time.Second // at most this often is the marker moved
	mtimeSlack    = 2 * time.Second  // coarse file times: widen the suspect window
)

func (s *Store) markerPath() string { return filepath.Join(s.dir, runningMarker) }

// openMarker reads what the marker says of the previous process and, after
// a clean stop, creates a fresh one. After an unclean stop the old marker
// stays until VerifyUnflushed has checked what it points at.
func (s *Store) openMarker() error {
	fi, err := os.Stat(s.markerPath())
	switch {
	case err == nil:
		s.mu.Lock()
		s.unclean = fi.ModTime()
		s.mu.Unlock()
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	f, err := os.OpenFile(s.markerPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.markedAt = time.Now()
	s.mu.Unlock()
	return syncDir(s.dir)
}

// begin and end bracket every write that is placed before it is flushed
// (Stage, Fetch): from before its first byte until its flush ended.
func (s *Store) begin() {
	s.mu.Lock()
	s.busy++
	s.mu.Unlock()
}

func (s *Store) end() {
	s.mu.Lock()
	s.busy--
	refresh := s.busy == 0 && s.unclean.IsZero() && !s.closed && time.Since(s.markedAt) >= markerEvery
	var at time.Time
	if refresh {
		at = time.Now() // nothing unflushed was written before this moment
		s.markedAt = at
	}
	s.mu.Unlock()
	if refresh {
		// Lost in a crash, the old time stays: more to verify, never less.
		os.Chtimes(s.markerPath(), at, at)
	}
}

// VerifyUnflushed, after an unclean stop of the process that had the store
// before, hashes every blob written since the last moment all its writes
// were on stable storage (the marker's time): a torn copy is deleted and
// reported to OnCorrupt like any corruption, and a missing one is simply not
// there. It returns how many it checked and how many were corrupt, then
// starts a fresh marker. After a clean stop it does nothing.
func (s *Store) VerifyUnflushed() (checked, corrupt int, err error) {
	s.mu.Lock()
	since := s.unclean
	s.mu.Unlock()
	if since.IsZero() {
		return 0, 0, nil
	}
	list, err := s.List()
	if err != nil {
		return 0, 0, err
	}
	for _, in := range list {
		if in.ModTime.Before(since.Add(-mtimeSlack)) {
			continue
		}
		checked++
		f, err := s.Open(in.Hash)
		switch {
		case err == nil:
			f.Close()
		case errors.Is(err, ErrCorrupt):
			corrupt++
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		default:
			return checked, corrupt, err
		}
	}
	if err := os.Remove(s.markerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return checked, corrupt, err
	}
	s.mu.Lock()
	s.unclean = time.Time{}
	s.mu.Unlock()
	return checked, corrupt, s.openMarker()
}

// Close waits for the background flushes and removes the marker, so the
// next Open knows the stop was clean. The Store must not be used after.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	calls := make([]*syncCall, 0, len(s.syncs))
	for _, c := range s.syncs {
		calls = append(calls, c)
	}
	unclean := !s.unclean.IsZero()
	s.mu.Unlock()
	for _, c := range calls {
		<-c.done
	}
	if unclean { // never verified: the next process must still do it
		return nil
	}
	if err := os.Remove(s.markerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobs: close: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("blobs: close: %w", err)
	}
	return nil
}
