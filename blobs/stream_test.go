package blobs

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// TestStreamingMemory moves a 64 MiB blob through Put, Serve and Fetch and
// checks that neither the heap in use nor the bytes allocated grow with it.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB of I/O")
	}
	const size = 64 << 20
	const limit = 16 << 20
	want := patternHash(t, size)
	src, dst := newStore(t), newStore(t)
	srv := serveStore(t, src)

	measure := func(name string, op func() error) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		runtime.ReadMemStats(&after)
		inuse := int64(after.HeapInuse) - int64(before.HeapInuse)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s of %d MiB: heap in use %+d KiB, allocated %d KiB", name, size>>20, inuse>>10, alloc>>10)
		if inuse > limit || alloc > limit {
			t.Errorf("%s: heap grew by %d and %d bytes were allocated, want both < %d", name, inuse, alloc, limit)
		}
	}
	measure("Put", func() error {
		h, n, err := src.Put(&patternReader{n: size}, want)
		if err == nil && (h != want || n != size) {
			t.Errorf("Put: got %s %d, want %s %d", h, n, want, size)
		}
		return err
	})
	measure("Serve", func() error {
		resp, err := http.Get(srv.URL + "/" + string(want))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		hw := sha256.New()
		n, err := io.Copy(hw, resp.Body)
		if got := Hash(hex.EncodeToString(hw.Sum(nil))); err == nil && (got != want || n != size) {
			t.Errorf("Serve: got %s %d, want %s %d", got, n, want, size)
		}
		return err
	})
	measure("Fetch", func() error {
		n, err := dst.Fetch(t.Context(), srv.Client(), srv.URL+"/"+string(want), want, nil)
		if err == nil && n != size {
			t.Errorf("Fetch: got %d bytes, want %d", n, size)
		}
		return err
	})
	if _, err := dst.Open(want); err != nil {
		t.Errorf("Open after Fetch: %v", err)
	}
}
