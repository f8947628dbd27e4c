package lograte

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Every: 10 * time.Second, Now: func() time.Time { return now }}
	type step struct {
		advance        time.Duration
		source         string
		ok             bool
		suppressed     int
		wantKey        string
		wantSuppressed int
	}
	steps := []step{
		{0, "a", true, 0, "a", 0},
		{time.Second, "a", false, 0, "a", 0},
		{time.Second, "a", false, 0, "a", 0},
		{0, "b", true, 0, "b", 0},
		{8 * time.Second, "a", true, 2, "a", 2},
		{time.Second, "b", false, 0, "b", 0},
		{20 * time.Second, "b", true, 1, "b", 1},
		{0, "b", false, 0, "b", 0},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, n, key := l.Allow(s.source)
		if ok != s.ok || n != s.wantSuppressed || key != s.wantKey {
			t.Errorf("step %d (%s): got ok=%v suppressed=%d key=%q, want ok=%v suppressed=%d key=%q",
				i, s.source, ok, n, key, s.ok, s.wantSuppressed, s.wantKey)
		}
	}
}

// TestLimiterManySources: spoofed sources cannot grow the map without
// bound; past maxSources they share Overflow, which is throttled too.
func TestLimiterManySources(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Every: time.Minute, Now: func() time.Time { return now }}
	written := 0
	for i := range 10 * maxSources {
		if ok, _, _ := l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256)); ok {
			written++
		}
	}
	if got, want := written, maxSources+1; got != want {
		t.Errorf("lines written for %d sources in one interval: got %d, want %d (one per remembered source, one for the rest)", 10*maxSources, got, want)
	}
	if got := len(l.sources); got > maxSources+1 {
		t.Errorf("sources remembered: got %d, want at most %d", got, maxSources+1)
	}
	// After the interval, quiet sources are forgotten and new ones get
	// their own line again.
	now = now.Add(2 * time.Minute)
	if ok, _, key := l.Allow("192.0.2.1"); !ok || key != "192.0.2.1" {
		t.Errorf("a new source after the interval: got ok=%v key %q, want its own line", ok, key)
	}
}
