package blobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a, b, empty := []byte("firmware image"), randBytes(3<<20+17, 1), []byte{}
	ha, hb, he := put(t, s, a), put(t, s, b), put(t, s, empty)
	if he != emptyHash {
		t.Errorf("empty blob: got %s, want %s", he, emptyHash)
	}
	for _, c := range []struct {
		h    Hash
		want []byte
	}{{ha, a}, {hb, b}, {he, empty}} {
		if !s.Has(c.h) {
			t.Errorf("Has(%s): got false, want true", c.h)
		}
		if n, err := s.Stat(c.h); err != nil || n != int64(len(c.want)) {
			t.Errorf("Stat(%s): got %d %v, want %d", c.h, n, err, len(c.want))
		}
		if got := readBlob(t, s, c.h); !bytes.Equal(got, c.want) {
			t.Errorf("content of %s: got %d bytes, want %d", c.h, len(got), len(c.want))
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "sha256", string(hb[:2]), string(hb))); err != nil {
		t.Errorf("layout: %v", err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Hash{ha, hb, he}
	slices.Sort(want)
	var got []Hash
	for _, in := range list {
		got = append(got, in.Hash)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List: got %v, want %v", got, want)
	}
	if n, size, err := s.Usage(); err != nil || n != 3 || size != int64(len(a)+len(b)) {
		t.Errorf("Usage: got %d %d %v, want 3 %d", n, size, err, len(a)+len(b))
	}
	if err := s.Delete(ha); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ha); err != nil {
		t.Errorf("Delete of a missing blob: got %v, want nil", err)
	}
	if s.Has(ha) {
		t.Errorf("Has after Delete: got true")
	}
	if _, err := s.Stat(ha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete: got %v, want ErrNotFound", err)
	}
	noTempFiles(t, s)
}

func TestPutWant(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := []byte("driver script")
	if _, _, err := s.Put(bytes.NewReader(data), hashOf([]byte("other"))); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Put with wrong want: got %v, want ErrHashMismatch", err)
	}
	if n, _, _ := s.Usage(); n != 0 {
		t.Errorf("after a mismatched Put: got %d blobs, want 0", n)
	}
	if h, _, err := s.Put(bytes.NewReader(data), hashOf(data)); err != nil || h != hashOf(data) {
		t.Errorf("Put with right want: got %s %v", h, err)
	}
	if _, _, err := s.Put(bytes.NewReader(data), "../../etc"); !errors.Is(err, ErrBadHash) {
		t.Errorf("Put with malformed want: got %v, want ErrBadHash", err)
	}
	noTempFiles(t, s)
}

func TestPutFile(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randBytes(100_000, 2)
	src := filepath.Join(t.TempDir(), "fw.tar.gz")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h, n, err := s.PutFile(src)
	if err != nil || h != hashOf(data) || n != int64(len(data)) {
		t.Fatalf("PutFile: got %s %d %v, want %s %d", h, n, err, hashOf(data), len(data))
	}
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Errorf("PutFile content differs")
	}
	if _, _, err := s.PutFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("PutFile of a missing file: got nil error")
	}
}

func TestMalformedHashNeverAPath(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, h := range []Hash{"", "../../etc/passwd", Hash(hexA[:63]), Hash(strings64("A")), "sha256:" + hexA} {
		if s.Has(h) {
			t.Errorf("Has(%q): got true", h)
		}
		for name, err := range map[string]error{
			"Stat":   func() error { _, err := s.Stat(h); return err }(),
			"Open":   func() error { _, err := s.Open(h); return err }(),
			"Delete": s.Delete(h),
		} {
			if !errors.Is(err, ErrBadHash) {
				t.Errorf("%s(%q): got %v, want ErrBadHash", name, h, err)
			}
		}
	}
}

func strings64(c string) string { return string(bytes.Repeat([]byte(c), 64)) }

func TestCorruptOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(50_000, 3)
	h := put(t, s, data)
	p := filepath.Join(dir, "sha256", string(h[:2]), string(h))
	data[1234] ^= 0x40
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(dir) // cold verify cache
	if err != nil {
		t.Fatal(err)
	}
	var reported []Hash
	fresh.OnCorrupt = func(h Hash) { reported = append(reported, h) }
	if _, err := fresh.Open(h); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a corrupt blob: got %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("corrupt file: got stat error %v, want it gone", err)
	}
	if got := fresh.Corruptions(); got != 1 || !slices.Equal(reported, []Hash{h}) {
		t.Errorf("corruptions: got %d %v, want 1 [%s]", got, reported, h)
	}
	if _, err := fresh.Open(h); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after the drop: got %v, want ErrNotFound", err)
	}
}

func TestConcurrentPutsSameContent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randBytes(256<<10, 4)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	hashes := make([]Hash, 8)
	for i := range 8 {
		wg.Go(func() { hashes[i], _, errs[i] = s.Put(bytes.NewReader(data), "") })
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil || hashes[i] != hashOf(data) {
			t.Errorf("Put %d: got %s %v, want %s", i, hashes[i], errs[i], hashOf(data))
		}
	}
	if n, size, _ := s.Usage(); n != 1 || size != int64(len(data)) {
		t.Errorf("Usage: got %d blobs %d bytes, want 1 %d", n, size, len(data))
	}
	fresh, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, fresh, hashOf(data)); !bytes.Equal(got, data) {
		t.Errorf("content differs")
	}
	noTempFiles(t, s)
}

func TestOpenCleansTempAndIgnoresStrays(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	h := put(t, s, []byte("keep"))
	dir := s.Dir()
	partial := string(hashOf([]byte("x"))) + partialSuffix
	for _, p := range []string{
		"tmp/put-123.tmp", "tmp/" + partial, "tmp/junk.partial",
		"sha256/zz/" + string(h), "sha256/" + string(h[:2]) + "/notahash", "sha256/00/" + string(h), "sha256/stray",
	} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tempFiles(t, s2); !slices.Equal(got, []string{partial}) {
		t.Errorf("tmp after Open: got %v, want [%s]", got, partial)
	}
	list, err := s2.List()
	if err != nil || len(list) != 1 || list[0].Hash != h || list[0].Size != 4 {
		t.Errorf("List: got %+v %v, want only %s", list, err, h)
	}
}

// Empty is true for a store that holds no blob, stray files or not, and
// false once it holds one.
func TestEmpty(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if err := os.WriteFile(filepath.Join(s.Dir(), "sha256", "stray"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if empty, err := s.Empty(); !empty || err != nil {
		t.Errorf("a new store with a stray file: got empty %v, %v; want true, nil", empty, err)
	}
	put(t, s, []byte("one blob"))
	if empty, err := s.Empty(); empty || err != nil {
		t.Errorf("a store with a blob: got empty %v, %v; want false, nil", empty, err)
	}
}
