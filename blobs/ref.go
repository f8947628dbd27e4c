package blobs

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; compare with errors.Is.
var (
	// ErrNotFound: the store (or the peer asked by Fetch) does not hold the blob.
	ErrNotFound = errors.New("blobs: blob not found")
	// ErrCorrupt: the bytes on disk do not hash to the blob's name; the file was deleted.
	ErrCorrupt = errors.New("blobs: stored blob is corrupt")
	// ErrBadName: a user-given blob name breaks the rules of ValidName.
	ErrBadName = errors.New("blobs: invalid blob name")
	// ErrHashMismatch: content given to Put or received by Fetch does not hash to the expected value.
	ErrHashMismatch = errors.New("blobs: content does not match its hash")
	// ErrBadHash: a Hash value that is not 64 lowercase hex digits was passed to the store.
	ErrBadHash = errors.New("blobs: invalid hash")
)

// RefPrefix starts the canonical text form of a blob reference.
const RefPrefix = "sha256:"

// MaxNameLen is the longest blob name ValidName accepts, in bytes.
const MaxNameLen = 200

// Hash is a blob's SHA-256 as 64 lowercase hex digits. Only a Hash for which
// Valid reports true ever becomes a path in the store.
type Hash string

// Ref returns the canonical reference, "sha256:<hex>".
func (h Hash) Ref() string { return RefPrefix + string(h) }

// Valid reports whether h is exactly 64 lowercase hex digits.
func (h Hash) Valid() bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseRef parses "sha256:<64 hex>" or a bare "<64 hex>"; the hex digits
// (and the prefix) may be in any case and come back lowercased. Anything else,
// including surrounding space, is refused.
func ParseRef(s string) (Hash, bool) {
	if len(s) == len(RefPrefix)+64 && strings.EqualFold(s[:len(RefPrefix)], RefPrefix) {
		s = s[len(RefPrefix):]
	}
	if len(s) != 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return "", false
		}
	}
	return Hash(strings.ToLower(s)), true
}

// ValidName checks a user-given, job-scoped blob name such as "fw.tar.gz" or
// "esp8266/fw-ota.tar.gz": 1..MaxNameLen bytes of [A-Za-z0-9._/-], no leading
// '/', no empty, "." or ".." path element, and not itself a hash reference (so
// a name and a hash can never be confused). Names are only ever keys in the
// ledger, never paths in the store; the rules keep them safe wherever else
// they end up (URLs, file names in scripts). The error wraps ErrBadName.
func ValidName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("blobs: name %q: %s: %w", name, why, ErrBadName)
	}
	switch {
	case name == "":
		return fmt.Errorf("blobs: empty name: %w", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("blobs: name of %d bytes is longer than %d: %w", len(name), MaxNameLen, ErrBadName)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return bad(fmt.Sprintf("byte %q at %d is not one of [A-Za-z0-9._/-]", name[i], i))
		}
	}
	if name[0] == '/' {
		return bad("leading '/'")
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "":
			return bad("empty path element")
		case ".", "..":
			return bad(fmt.Sprintf("path element %q", el))
		}
	}
	if _, ok := ParseRef(name); ok {
		return bad("looks like a hash reference")
	}
	return nil
}

func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == '/' || c == '-'
}
