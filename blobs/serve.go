package blobs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

// emptyHash is the SHA-256 of no bytes.
const emptyHash Hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Serve serves blob h with http.ServeContent semantics (Range, If-Range,
// If-None-Match, HEAD), Content-Type application/octet-stream, ETag
// "sha256:<hex>" and, if filename is not empty, a Content-Disposition naming
// its last element. A blob that cannot be opened gets a plain-text error:
// 400 for a malformed hash, 404 when missing or found corrupt, else 500.
// See TryServe for how the bytes are verified.
func (s *Store) Serve(w http.ResponseWriter, r *http.Request, h Hash, filename string) {
	if err := s.TryServe(w, r, h, filename); err != nil {
		s.serveError(w, err)
	}
}

// serveError answers a blob that could not be opened.
func (s *Store) serveError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadHash):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// TryServe is Serve for callers that want to handle a missing or corrupt
// blob themselves (for example by fetching it from a peer and trying again):
// when the blob cannot be opened it writes nothing and returns the error
// (wrapping ErrNotFound, ErrCorrupt or ErrBadHash).
//
// A full GET (no Range header) is hashed while it streams and is not
// verified before; if the bytes turn out not to match h, the file is
// deleted, counted as a corruption, and the handler panics with
// http.ErrAbortHandler before the last bytes are written, so the client sees
// a broken transfer and never a complete wrong body. Middleware between
// net/http and TryServe must let that panic through. A Range request is
// served from a file verified as by Open first (and if it is a single range
// from byte 0 to the end, or ServeContent ignores it, also hashed while it
// streams). HEAD sends no bytes and verifies nothing.
func (s *Store) TryServe(w http.ResponseWriter, r *http.Request, h Hash, filename string) error {
	return s.tryServe(w, r, h, filename, false)
}

// RecentlyVerified is how long a copy hashed in this process (by Put, Fetch,
// Open or a full Serve) is trusted by ServeToVerifier.
const RecentlyVerified = 10 * time.Minute

// ServeToVerifier is Serve for a receiver that verifies every byte itself
// (Fetch, on a peer): a full GET of a copy whose current version was hashed
// within RecentlyVerified is sent without hashing it again, so a transfer
// costs one SHA-256 pass (the receiver's) instead of two. Should the copy
// have rotted since, the receiver refuses it (ErrHashMismatch) and the next
// full serve after RecentlyVerified finds and drops it. Anything else is
// served as by Serve.
func (s *Store) ServeToVerifier(w http.ResponseWriter, r *http.Request, h Hash) {
	if err := s.tryServe(w, r, h, "", true); err != nil {
		s.serveError(w, err)
	}
}

func (s *Store) tryServe(w http.ResponseWriter, r *http.Request, h Hash, filename string, trustRecent bool) error {
	head := r.Method == http.MethodHead
	rng := r.Header.Get("Range")
	ranged := rng != ""
	// Multipart ranges are read on a goroutine of ServeContent's, where the
	// abort panic must not happen; a single range is read on this one.
	armed := !head && !strings.Contains(rng, ",")
	f, fi, err := s.open(h, ranged && !head)
	if err != nil {
		return err
	}
	if trustRecent && !ranged && s.verifiedWithin(h, stampOf(fi), RecentlyVerified) {
		armed = false
	}
	defer f.Close()
	if fi.Size() == 0 && h != emptyHash {
		s.dropCorrupt(h, f)
		return fmt.Errorf("blobs: %s: file is empty, deleted: %w", h.Ref(), ErrCorrupt)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", `"`+h.Ref()+`"`)
	if filename != "" {
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(filename)}); cd != "" {
			hd.Set("Content-Disposition", cd)
		}
	}
	vr := &verifyingReader{s: s, h: h, f: f, size: fi.Size(), armed: armed, hashing: true, hw: sha256.New()}
	http.ServeContent(w, r, "", fi.ModTime(), vr)
	if vr.verified {
		s.markVerified(h, stampOf(fi))
	}
	return nil
}

// verifyingReader hashes a blob file while http.ServeContent reads it, as
// long as the reads run from offset 0 in sequence, and checks the hash
// before it hands out the last bytes.
type verifyingReader struct {
	s        *Store
	h        Hash
	f        *os.File
	size     int64
	pos      int64
	armed    bool // verify at all (reads happen on the handler's goroutine)
	hashing  bool // hw holds exactly the bytes [0, pos)
	verified bool
	hw       hash.Hash
}

func (v *verifyingReader) Seek(off int64, whence int) (int64, error) {
	n, err := v.f.Seek(off, whence)
	if err != nil {
		return n, err
	}
	v.pos, v.hashing = n, n == 0
	if n == 0 {
		v.hw.Reset()
	}
	return n, nil
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	if !v.armed || !v.hashing || v.verified {
		v.pos += int64(n)
		return n, err
	}
	v.hw.Write(p[:n])
	v.pos += int64(n)
	switch {
	case v.pos > v.size:
		v.abort() // the file grew: not the blob
	case v.pos == v.size:
		if sumOf(v.hw) != v.h {
			v.abort()
		}
		v.verified = true
	case err == io.EOF:
		v.abort() // the file shrank
	}
	return n, err
}

// abort drops the corrupt file and breaks the response off.
func (v *verifyingReader) abort() {
	v.s.dropCorrupt(v.h, v.f)
	panic(http.ErrAbortHandler)
}
