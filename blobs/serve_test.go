package blobs

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestServe(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := randBytes(300_000, 5)
	h := put(t, s, data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Serve(w, r, h, "esp8266/fw-ota.tar.gz")
	}))
	defer srv.Close()
	etag := `"sha256:` + string(h) + `"`
	tests := []struct {
		name     string
		method   string
		hdr      map[string]string
		status   int
		body     []byte
		clen     string
		crange   string
		wantBody bool
	}{
		{"full", "GET", nil, 200, data, strconv.Itoa(len(data)), "", true},
		{"range", "GET", map[string]string{"Range": "bytes=1000-1999"}, 206, data[1000:2000], "1000",
			fmt.Sprintf("bytes 1000-1999/%d", len(data)), true},
		{"open range", "GET", map[string]string{"Range": "bytes=299990-"}, 206, data[299990:], "10",
			fmt.Sprintf("bytes 299990-299999/%d", len(data)), true},
		{"head", "HEAD", nil, 200, nil, strconv.Itoa(len(data)), "", true},
		{"if-none-match", "GET", map[string]string{"If-None-Match": etag}, 304, nil, "", "", false},
		{"if-range stale", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, data,
			strconv.Itoa(len(data)), "", true},
		{"bad range", "GET", map[string]string{"Range": "bytes=400000-"}, 416, nil, "", "bytes */300000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := get(t, tt.method, srv.URL, tt.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.wantBody && !bytes.Equal(body, tt.body) {
				t.Errorf("body: got %d bytes, want %d", len(body), len(tt.body))
			}
			if got := resp.Header.Get("Content-Length"); tt.clen != "" && got != tt.clen {
				t.Errorf("Content-Length: got %q, want %q", got, tt.clen)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.crange {
				t.Errorf("Content-Range: got %q, want %q", got, tt.crange)
			}
			if got := resp.Header.Get("ETag"); got != etag && resp.StatusCode < 400 {
				t.Errorf("ETag: got %q, want %q", got, etag)
			}
			if resp.StatusCode < 300 {
				if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("Content-Type: got %q", got)
				}
				if got, want := resp.Header.Get("Content-Disposition"), `attachment; filename=fw-ota.tar.gz`; got != want {
					t.Errorf("Content-Disposition: got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tests := []struct {
		h    Hash
		want int
	}{{Hash(hexA), 404}, {"../../etc/passwd", 400}}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		s.Serve(w, httptest.NewRequest("GET", "/", nil), tt.h, "")
		if w.Code != tt.want {
			t.Errorf("Serve(%q): got %d, want %d", tt.h, w.Code, tt.want)
		}
	}
}

// TestServeCorruptAborts corrupts a blob behind a warm verify cache (same
// size, mtime set back), so only the streaming check can catch it.
func TestServeCorruptAborts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var reported atomic.Int64
	s.OnCorrupt = func(Hash) { reported.Add(1) }
	data := randBytes(1<<20, 6)
	h := put(t, s, data)
	readBlob(t, s, h) // warm
	p := filepath.Join(s.Dir(), "sha256", string(h[:2]), string(h))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[len(data)/2] ^ 1}, int64(len(data)/2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(h); err != nil { // the cache still trusts it
		t.Fatalf("warm Open: %v", err)
	} else {
		got.Close()
	}
	srv := serveStore(t, s)
	srv.Config.ErrorLog = nil
	resp, body, err := get(t, "GET", srv.URL+"/"+string(h), nil)
	if err == nil && resp.StatusCode == 200 && len(body) == len(data) {
		t.Fatalf("got a complete 200 body of %d wrong bytes, want a broken transfer", len(body))
	}
	t.Logf("client saw: err=%v, %d of %d bytes", err, len(body), len(data))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("corrupt file: got stat error %v, want it gone", err)
	}
	if got := s.Corruptions(); got != 1 || reported.Load() != 1 {
		t.Errorf("corruptions: got %d (OnCorrupt %d), want 1", got, reported.Load())
	}
	if resp, _, err := get(t, "GET", srv.URL+"/"+string(h), nil); err != nil || resp.StatusCode != 404 {
		t.Errorf("after the drop: got %v %v, want 404", resp, err)
	}
}

// TestServeToVerifier: a copy hashed recently is sent to a verifying
// receiver without hashing it again (so bytes that rotted since go out, for
// the receiver to refuse); an older verification, a Range request or plain
// Serve hash the bytes and break off a wrong body.
func TestServeToVerifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		peer      bool          // ServeToVerifier, else Serve
		age       time.Duration // since the put verified the copy
		rng       string
		wantWhole bool // the corrupt body arrives whole (not hashed)
	}{
		{"to a verifier, just put", true, time.Second, "", true},
		{"to a verifier, verified at the limit", true, RecentlyVerified, "", true},
		{"to a verifier, verified too long ago", true, RecentlyVerified + time.Second, "", false},
		{"to a verifier, a range from 0", true, time.Second, "bytes=0-", false},
		{"plain Serve, just put", false, time.Second, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			now := time.Now()
			s.now = func() time.Time { return now }
			data := randBytes(200_000, 9)
			h := put(t, s, data)
			now = now.Add(tt.age)
			// Rot one byte in place, keeping size and mtime: the file
			// version looks as verified.
			p := s.path(h)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{data[100] ^ 0xff}, 100); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.peer {
					s.ServeToVerifier(w, r, h)
				} else {
					s.Serve(w, r, h, "")
				}
			}))
			defer srv.Close()
			var hdr map[string]string
			if tt.rng != "" {
				hdr = map[string]string{"Range": tt.rng}
			}
			resp, body, err := get(t, "GET", srv.URL, hdr)
			whole := err == nil && resp.StatusCode/100 == 2 && len(body) == len(data)
			if whole != tt.wantWhole {
				t.Fatalf("corrupt body sent whole: got %v, want %v (err %v, %d of %d bytes)", whole, tt.wantWhole, err, len(body), len(data))
			}
			if whole && bytes.Equal(body, data) {
				t.Fatal("got the original bytes, want the rotted copy: the test did not corrupt it")
			}
			if got := s.Has(h); got != tt.wantWhole {
				t.Errorf("copy kept: got %v, want %v (a hashed serve drops a corrupt copy)", got, tt.wantWhole)
			}
		})
	}
}
