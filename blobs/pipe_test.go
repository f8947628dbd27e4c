package blobs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// brokenAfter yields the first n bytes of b, then err.
func brokenAfter(b []byte, n int, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(b[:n]), iotest.ErrReader(err))
}

func TestCopyHashed(t *testing.T) {
	t.Parallel()
	data := randBytes(3*bufSize+12345, 9) // more buffers than the pipeline has
	errBroke := errors.New("connection reset")
	tests := []struct {
		name     string
		src      io.Reader
		prefix   []byte // the file holds it before the copy
		wantN    int
		wantErr  error
		wantFile []byte // what the file holds after
	}{
		{"whole", bytes.NewReader(data), nil, len(data), nil, data},
		{"empty", bytes.NewReader(nil), nil, 0, nil, nil},
		{"appends after a kept prefix", bytes.NewReader(data[100:]), data[:100], len(data) - 100, nil, data},
		{"one short read", iotest.HalfReader(bytes.NewReader(data)), nil, len(data), nil, data},
		// Bytes read before the source broke are kept, hashed and written:
		// the partial file and the hash stay in step for a resume.
		{"source breaks mid-buffer", brokenAfter(data, bufSize+777, errBroke), nil, bufSize + 777, errBroke, data[:bufSize+777]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hw := sha256.New()
			if len(tc.prefix) > 0 {
				f.Write(tc.prefix)
				hw.Write(tc.prefix)
			}
			n, err := copyHashed(f, hw, tc.src)
			if int(n) != tc.wantN || !errors.Is(err, tc.wantErr) {
				t.Fatalf("copyHashed: got %d, %v; want %d, %v", n, err, tc.wantN, tc.wantErr)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.wantFile) {
				t.Errorf("file: got %d bytes, want %d", len(got), len(tc.wantFile))
			}
			if sum := sha256.Sum256(tc.wantFile); !bytes.Equal(hw.Sum(nil), sum[:]) {
				t.Errorf("hash: got %x, want %x (the hash of what the file holds)", hw.Sum(nil), sum)
			}
		})
	}
}

func TestCopyHashedWriteFails(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := copyHashed(f, sha256.New(), bytes.NewReader(randBytes(8*bufSize, 1)))
	if err == nil {
		t.Fatal("copyHashed into a read-only file: got nil error, want the write's")
	}
	if n >= 8*bufSize {
		t.Errorf("copyHashed read all %d bytes after its first write failed, want it to stop early", n)
	}
}
