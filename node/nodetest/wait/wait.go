package wait

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"
)

// Env names the environment variable holding the timeout multiplier.
const Env = "OURCI_TEST_TIMEOUT_SCALE"

// The backoff between polls: the first wait, and its cap.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
)

// Factor returns the multiplier in OURCI_TEST_TIMEOUT_SCALE: 1 when unset,
// an error when it is not a positive finite number.
func Factor() (float64, error) {
	v, ok := os.LookupEnv(Env)
	if !ok || v == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("wait: %s=%q: want a positive number such as 1.5 or 3", Env, v)
	}
	return f, nil
}

// Scale returns d times the multiplier in OURCI_TEST_TIMEOUT_SCALE. It
// panics when the variable holds no positive number.
func Scale(d time.Duration) time.Duration {
	f, err := Factor()
	if err != nil {
		panic(err)
	}
	return scale(d, f)
}

func scale(d time.Duration, f float64) time.Duration {
	if f == 1 {
		return d
	}
	s := float64(d) * f
	if s >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(s)
}

// For calls cond until it reports true, sleeping 5 ms after the first
// call and twice as long after each further one (at most 200 ms). When
// Scale(timeout) passes first, it fails the test with the timeout, what
// (what was awaited, e.g. "node2 to see 3 members") and the description
// cond returned last. It must be called from the test's goroutine.
func For(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	f, err := Factor()
	if err != nil {
		t.Fatal(err)
	}
	limit := scale(timeout, f)
	deadline := time.Now().Add(limit)
	delay := firstPoll
	for {
		ok, why := cond()
		if ok {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			if f != 1 {
				t.Fatalf("waited %s (%s × %s %g) for %s: %s", limit, timeout, Env, f, what, why)
			}
			t.Fatalf("waited %s for %s: %s", limit, what, why)
		}
		time.Sleep(min(delay, left))
		delay = min(2*delay, maxPoll)
	}
}
