package wait

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeT records a fatal failure instead of ending the goroutine.
type fakeT struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	panic(f)
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// run calls For on a fakeT and returns its failure message ("" if none).
func run(timeout time.Duration, what string, cond func() (bool, string)) (msg string) {
	ft := &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != ft {
			panic(r)
		}
		msg = ft.fatal
	}()
	For(ft, timeout, what, cond)
	return ""
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	t.Setenv(Env, "")
	calls := 0
	start := time.Now()
	msg := run(5*time.Second, "three calls", func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprintf("%d calls", calls)
	})
	if msg != "" || calls != 3 {
		t.Fatalf("got failure %q after %d calls, want none after 3", msg, calls)
	}
	// 5 ms + 10 ms of backoff, not a fixed long sleep.
	if took := time.Since(start); took > time.Second {
		t.Errorf("three calls took %s, want well under a second", took)
	}
}

func TestForFailsWithTimeoutWhatAndWhy(t *testing.T) {
	t.Setenv(Env, "")
	calls := 0
	msg := run(50*time.Millisecond, "the moon", func() (bool, string) {
		calls++
		return false, fmt.Sprintf("not yet (call %d)", calls)
	})
	want := fmt.Sprintf("waited 50ms for the moon: not yet (call %d)", calls)
	if msg != want {
		t.Errorf("got failure %q, want %q", msg, want)
	}
	if calls < 3 {
		t.Errorf("cond called %d times in 50ms, want it polled", calls)
	}
}

func TestForScalesItsTimeout(t *testing.T) {
	t.Setenv(Env, "3")
	start := time.Now()
	msg := run(40*time.Millisecond, "nothing", func() (bool, string) { return false, "never" })
	if took := time.Since(start); took < 120*time.Millisecond {
		t.Errorf("gave up after %s, want at least 3 × 40ms", took)
	}
	if want := "waited 120ms (40ms × " + Env + " 3) for nothing: never"; msg != want {
		t.Errorf("got failure %q, want %q", msg, want)
	}
}

func TestScale(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want time.Duration
	}{
		{"", time.Second},
		{"1", time.Second},
		{"2.5", 2500 * time.Millisecond},
		{"0.5", 500 * time.Millisecond},
	} {
		t.Setenv(Env, tt.env)
		if got := Scale(time.Second); got != tt.want {
			t.Errorf("%s=%q: Scale(1s) = %s, want %s", Env, tt.env, got, tt.want)
		}
	}
}

func TestInvalidScaleFailsLoudly(t *testing.T) {
	for _, v := range []string{"fast", "0", "-2", "NaN", "+Inf", "1s"} {
		t.Setenv(Env, v)
		if msg := run(time.Second, "x", func() (bool, string) { return true, "" }); !strings.Contains(msg, Env) || !strings.Contains(msg, v) {
			t.Errorf("%s=%q: For failed with %q, want a failure naming the variable and its value", Env, v, msg)
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s=%q: Scale did not panic", Env, v)
				}
			}()
			Scale(time.Second)
		}()
	}
}
