package blobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestStageIsReadableThenSynced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randBytes(300_000, 1)
	h := stage(t, s, data)
	// Readable at once, before (or while) the flush runs.
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Fatalf("staged blob reads %d bytes, want the %d staged", len(got), len(data))
	}
	if err := s.Sync(h); err != nil {
		t.Fatalf("Sync: got %v, want nil", err)
	}
	if err := s.Sync(h); err != nil { // a second wait sees the same outcome
		t.Fatalf("second Sync: got %v, want nil", err)
	}
	if _, _, err := s.Stage(bytes.NewReader(data), hashOf([]byte("other"))); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("Stage with a wrong want: got %v, want ErrHashMismatch", err)
	}
	if err := s.Sync(hashOf([]byte("never stored"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Sync of an absent blob: got %v, want ErrNotFound", err)
	}
	if err := s.Sync("../x"); !errors.Is(err, ErrBadHash) {
		t.Errorf("Sync of a malformed hash: got %v, want ErrBadHash", err)
	}
	// A blob Put (durable before visible) or left by an earlier process is
	// flushed on the spot.
	if err := s.Sync(put(t, s, []byte("put, not staged"))); err != nil {
		t.Errorf("Sync of a Put blob: got %v, want nil", err)
	}
	noTempFiles(t, s)
}

func TestStageConcurrent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := randBytes(64<<10, uint64(i%8)) // 8 distinct blobs, each staged 4 times
			h, _, err := s.Stage(bytes.NewReader(b), "")
			if err == nil {
				err = s.Sync(h)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Stage+Sync: %v", err)
		}
	}
	if list, err := s.List(); err != nil || len(list) != 8 {
		t.Errorf("List: got %d blobs (%v), want 8", len(list), err)
	}
	s.mu.Lock()
	busy := s.busy
	s.mu.Unlock()
	if busy != 0 {
		t.Errorf("writes still counted as unflushed after every Sync: got %d, want 0", busy)
	}
}

// An unclean stop (no Close) leaves the marker: the next process re-hashes
// what was written since it, drops a torn copy, and starts a fresh marker.
func TestUncleanStopVerifiesUnflushed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openAt(t, dir)
	old := put(t, s, []byte("from a clean run"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(s.markerPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker after Close: got %v, want it removed", err)
	}

	s = openAt(t, dir)
	if checked, corrupt, err := s.VerifyUnflushed(); checked != 0 || corrupt != 0 || err != nil {
		t.Fatalf("VerifyUnflushed after a clean stop: got %d %d %v, want 0 0 nil", checked, corrupt, err)
	}
	good := stage(t, s, []byte("staged, then the process died"))
	torn := stage(t, s, []byte("staged, torn by the crash"))
	for _, h := range []Hash{good, torn} {
		if err := s.Sync(h); err != nil {
			t.Fatal(err)
		}
	}
	// The process dies here (no Close); the disk kept a torn copy.
	if err := os.WriteFile(s.path(torn), make([]byte, len("staged, torn by the crash")), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := openAt(t, dir)
	var dropped []Hash
	s2.OnCorrupt = func(h Hash) { dropped = append(dropped, h) }
	checked, corrupt, err := s2.VerifyUnflushed()
	if err != nil || checked < 2 || corrupt != 1 {
		t.Fatalf("VerifyUnflushed after an unclean stop: got %d checked, %d corrupt, %v; want at least 2, 1, nil", checked, corrupt, err)
	}
	if !slices.Equal(dropped, []Hash{torn}) {
		t.Errorf("OnCorrupt: got %v, want [%s]", dropped, torn)
	}
	for h, want := range map[Hash]bool{old: true, good: true, torn: false} {
		if got := s2.Has(h); got != want {
			t.Errorf("Has(%s) after the check: got %v, want %v", h, got, want)
		}
	}
	// Checked: a fresh marker, so another unclean stop right now has
	// nothing older to check again.
	if checked, _, _ := s2.VerifyUnflushed(); checked != 0 {
		t.Errorf("second VerifyUnflushed: checked %d, want 0", checked)
	}
}

// A process that never finished the check leaves the old marker, even when
// it closes cleanly: the check is still owed.
func TestUnverifiedMarkerSurvivesClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openAt(t, dir)
	stage(t, s, []byte("unflushed, maybe"))
	// No Close: unclean.
	s2 := openAt(t, dir)
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s3 := openAt(t, dir)
	if checked, _, err := s3.VerifyUnflushed(); checked != 1 || err != nil {
		t.Errorf("VerifyUnflushed: got %d checked (%v), want 1: the owed check", checked, err)
	}
}

// The marker moves forward once every write was flushed, so the window a
// crash leaves to re-check stays short.
func TestMarkerMovesWhenQuiet(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(s.markerPath(), past, past); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.markedAt = past
	s.mu.Unlock()
	if err := s.Sync(stage(t, s, []byte("a write that ends a busy spell"))); err != nil {
		t.Fatal(err)
	}
	// The flush ends the write (and moves the marker) before Sync returns.
	fi, err := os.Stat(s.markerPath())
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().After(past.Add(time.Minute)) {
		t.Errorf("marker time: got %v, want moved past %v", fi.ModTime(), past)
	}
}

// The daemon checks an unclean stop's leftovers while it already takes
// uploads: the two run side by side (run with -race).
func TestVerifyUnflushedWhileStaging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openAt(t, dir)
	for i := range 20 {
		stage(t, s, randBytes(4096, uint64(i)))
	}
	s2 := openAt(t, dir) // the first never closed: unclean
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			h, _, err := s2.Stage(bytes.NewReader(randBytes(4096, uint64(100+i))), "")
			if err == nil {
				err = s2.Sync(h)
			}
			if err != nil {
				t.Errorf("Stage+Sync during the check: %v", err)
				return
			}
		}
	}()
	checked, corrupt, err := s2.VerifyUnflushed()
	wg.Wait()
	if err != nil || checked < 20 || corrupt != 0 {
		t.Errorf("VerifyUnflushed: got %d checked, %d corrupt, %v; want at least 20, 0, nil", checked, corrupt, err)
	}
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(s2.markerPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker after a verified run's Close: got %v, want it removed", err)
	}
}

// Fan-out directories are remembered once made; one removed behind the
// store's back is made again, for Put and for Stage.
func TestFanRemovedBehindTheStoresBack(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := []byte("in a fan that will vanish")
	h := put(t, s, data)
	for _, how := range []string{"Put", "Stage"} {
		if err := os.RemoveAll(filepath.Dir(s.path(h))); err != nil {
			t.Fatal(err)
		}
		var err error
		if how == "Put" {
			_, _, err = s.Put(bytes.NewReader(data), h)
		} else {
			_, _, err = s.Stage(bytes.NewReader(data), h)
			if err == nil {
				err = s.Sync(h)
			}
		}
		if err != nil {
			t.Fatalf("%s after its fan directory was removed: %v", how, err)
		}
		if got := readBlob(t, s, h); !bytes.Equal(got, data) {
			t.Fatalf("%s after its fan directory was removed: read %q, want %q", how, got, data)
		}
	}
}
