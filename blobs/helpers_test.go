package blobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// openAt opens the store in dir, as a new process would.
func openAt(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func hashOf(b []byte) Hash {
	sum := sha256.Sum256(b)
	return Hash(hex.EncodeToString(sum[:]))
}

func put(t *testing.T, s *Store, b []byte) Hash {
	t.Helper()
	return storeWith(t, "Put", s.Put, b)
}

func stage(t *testing.T, s *Store, b []byte) Hash {
	t.Helper()
	return storeWith(t, "Stage", s.Stage, b)
}

// storeWith stores b with Put or Stage and checks what it answered.
func storeWith(t *testing.T, name string, store func(io.Reader, Hash) (Hash, int64, error), b []byte) Hash {
	t.Helper()
	h, n, err := store(bytes.NewReader(b), "")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if n != int64(len(b)) || h != hashOf(b) {
		t.Fatalf("%s: got %s %d, want %s %d", name, h, n, hashOf(b), len(b))
	}
	return h
}

// noTempFiles fails the test if the store's tmp directory is not empty.
func noTempFiles(t *testing.T, s *Store) {
	t.Helper()
	if left := tempFiles(t, s); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// readBlob returns blob h's content through Store.Open.
func readBlob(t *testing.T, s *Store, h Hash) []byte {
	t.Helper()
	f, err := s.Open(h)
	if err != nil {
		t.Fatalf("Open(%s): %v", h, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", h, err)
	}
	return b
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tempFiles lists what is left in the store's tmp directory.
func tempFiles(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatalf("read tmp: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// serveStore serves s at /<hex> (any path whose last element is a ref).
func serveStore(t *testing.T, s *Store) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := ParseRef(path.Base(r.URL.Path))
		if !ok {
			http.Error(w, "bad ref", http.StatusBadRequest)
			return
		}
		s.Serve(w, r, h, "")
	}))
	t.Cleanup(srv.Close)
	return srv
}

const patternBlock = 64 << 10

var patternData = randBytes(patternBlock, 42)

// patternReader yields n deterministic bytes without holding them: block b
// is patternData rotated by b, so blocks differ.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	total := 0
	for len(b) > 0 {
		blk, in := p.off/patternBlock, int(p.off%patternBlock)
		src := patternData[(in+int(blk))%patternBlock:]
		if room := patternBlock - in; len(src) > room {
			src = src[:room]
		}
		k := copy(b, src)
		b, total, p.off = b[k:], total+k, p.off+int64(k)
	}
	return total, nil
}

func patternHash(t *testing.T, n int64) Hash {
	t.Helper()
	hw := sha256.New()
	if _, err := io.Copy(hw, &patternReader{n: n}); err != nil {
		t.Fatal(err)
	}
	return Hash(hex.EncodeToString(hw.Sum(nil)))
}
