package github_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

// budget is a grow func over a fixed number of bytes that records what it
// granted.
type budget struct{ left, granted int64 }

func (b *budget) grow(k int64) bool {
	if k > b.left {
		return false
	}
	b.left -= k
	b.granted += k
	return true
}

func sigOf(t testing.TB, secret, body []byte) []byte {
	t.Helper()
	s, err := github.ParseSignature(secret, githubtest.Sign(secret, body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadSigned(t *testing.T) {
	secret := []byte(vecSecret)
	big := bytes.Repeat([]byte("x"), 1<<20)
	for _, tt := range []struct {
		name      string
		body      []byte
		size      int64 // declared; -1 unknown
		sigBody   []byte
		budget    int64
		wantErr   error
		maxGrant  int64 // the most the buffer may take of the budget
		oneByteAt bool  // the reader returns one byte per Read
	}{
		{name: "vector, length known", body: []byte(vecBody), size: int64(len(vecBody)), sigBody: []byte(vecBody), budget: 1 << 20, maxGrant: int64(len(vecBody)) + 1},
		{name: "vector, length unknown", body: []byte(vecBody), size: -1, sigBody: []byte(vecBody), budget: 1 << 20, maxGrant: 64 << 10},
		{name: "1 MiB, length known", body: big, size: int64(len(big)), sigBody: big, budget: 2 << 20, maxGrant: int64(len(big)) + 1},
		{name: "1 MiB, length unknown, read a byte at a time", body: big[:200<<10], size: -1, sigBody: big[:200<<10], budget: 2 << 20, maxGrant: 256 << 10, oneByteAt: true},
		{name: "empty", body: nil, size: 0, sigBody: nil, budget: 10, maxGrant: 1},
		{name: "tampered", body: []byte("Hello, World?"), size: 13, sigBody: []byte(vecBody), budget: 1 << 20, wantErr: github.ErrSignature, maxGrant: 14},
		{name: "over the budget, length known", body: big, size: int64(len(big)), sigBody: big, budget: 512 << 10, wantErr: github.ErrBusy, maxGrant: 512 << 10},
		{name: "over the budget, length unknown", body: big, size: -1, sigBody: big, budget: 300 << 10, wantErr: github.ErrBusy, maxGrant: 300 << 10},
		{name: "no budget at all", body: []byte(vecBody), size: 13, sigBody: []byte(vecBody), budget: 0, wantErr: github.ErrBusy, maxGrant: 0},
		{name: "declared over MaxBody", body: []byte(vecBody), size: github.MaxBody + 1, sigBody: []byte(vecBody), budget: 1 << 30, wantErr: github.ErrTooLarge, maxGrant: 0},
		{name: "shorter than declared", body: []byte(vecBody), size: 20, sigBody: []byte(vecBody), budget: 1 << 20, wantErr: io.ErrUnexpectedEOF, maxGrant: 21},
		{name: "longer than declared", body: []byte(vecBody), size: 5, sigBody: []byte(vecBody), budget: 1 << 20, wantErr: github.ErrTooLarge, maxGrant: 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &budget{left: tt.budget}
			var r io.Reader = bytes.NewReader(tt.body)
			if tt.oneByteAt {
				r = iotest.OneByteReader(r)
			}
			got, err := github.ReadSigned(r, tt.size, secret, sigOf(t, secret, tt.sigBody), b.grow)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got error %v, want the body", err)
			case tt.wantErr == nil && !bytes.Equal(got, tt.body):
				t.Fatalf("got %d bytes, want the %d sent", len(got), len(tt.body))
			}
			if b.granted > tt.maxGrant {
				t.Errorf("budget taken: got %d bytes, want at most %d", b.granted, tt.maxGrant)
			}
			if github.HTTPStatus(err) != map[error]int{nil: 200, github.ErrSignature: 401, github.ErrBusy: 503, github.ErrTooLarge: 413, io.ErrUnexpectedEOF: 400}[tt.wantErr] {
				t.Errorf("HTTPStatus(%v) = %d", err, github.HTTPStatus(err))
			}
		})
	}
}

// TestParseSignatureBeforeTheBody: the header's form is judged without
// the body, so an unsigned request is refused before a byte is read.
func TestParseSignatureBeforeTheBody(t *testing.T) {
	for _, h := range []string{"", "sha1=" + strings.Repeat("ab", 20), "sha256=" + strings.Repeat("zz", 32), "sha256=abc"} {
		if _, err := github.ParseSignature([]byte(vecSecret), h); !errors.Is(err, github.ErrSignature) {
			t.Errorf("ParseSignature(%q) = %v, want ErrSignature", h, err)
		}
	}
	if _, err := github.ParseSignature(nil, vecHeader); !errors.Is(err, github.ErrSignature) {
		t.Errorf("no secret: got %v, want ErrSignature", err)
	}
	if _, err := github.ParseSignature([]byte(vecSecret), vecHeader); err != nil {
		t.Errorf("the documented vector's header: %v", err)
	}
}

// FuzzReadSigned: whatever the body, declared size, signature and budget,
// ReadSigned never takes more of the budget than it has, returns the body
// only when it is exactly what was signed, and errs only with its
// sentinels (or the reader's).
func FuzzReadSigned(f *testing.F) {
	f.Add([]byte(vecBody), int64(13), []byte(vecBody), int64(1<<20))
	f.Add([]byte(vecBody), int64(-1), []byte(vecBody), int64(20))
	f.Add([]byte(vecBody), int64(3), []byte(vecBody), int64(1<<20))
	f.Add([]byte("payload=%7B%7D"), int64(-1), []byte("payload=%7B%7E"), int64(5))
	f.Add([]byte{}, int64(0), []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, body []byte, size int64, signed []byte, left int64) {
		secret := []byte(vecSecret)
		if size < -1 {
			size = -1
		}
		b := &budget{left: max(left, 0)}
		start := b.left
		got, err := github.ReadSigned(bytes.NewReader(body), size, secret, sigOf(t, secret, signed), b.grow)
		if b.granted > start {
			t.Fatalf("took %d of a budget of %d", b.granted, start)
		}
		if err != nil {
			if !errors.Is(err, github.ErrSignature) && !errors.Is(err, github.ErrBusy) && !errors.Is(err, github.ErrTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if !bytes.Equal(got, body) || !bytes.Equal(body, signed) {
			t.Fatalf("accepted %q, signed %q", got, signed)
		}
		if size >= 0 && int64(len(body)) != size {
			t.Fatalf("accepted %d bytes declared as %d", len(body), size)
		}
	})
}
