package executor

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// fakeWait waits (with a deadline) for p and returns its exit code.
func fakeWait(t *testing.T, p Process) int {
	t.Helper()
	ch := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		ch <- code
	}()
	select {
	case code := <-ch:
		return code
	case <-time.After(5 * time.Second):
		t.Fatal("Wait: still blocked after 5s")
		return 0
	}
}

// fakeStart starts s on f and fails the test on error.
func fakeStart(t *testing.T, ctx context.Context, f *Fake, s Spec) Process {
	t.Helper()
	p, err := f.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	return p
}

func TestFakeRecordsAndFinishes(t *testing.T) {
	f := NewFake()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	got := make(chan *FakeProcess, 1)
	go func() {
		fp, err := f.Await(ctx, 1) // the second Start, not yet made
		if err != nil {
			t.Error(err)
		}
		got <- fp
	}()
	p0 := fakeStart(t, context.Background(), f, Spec{Args: []string{"a"}})
	p1 := fakeStart(t, context.Background(), f, Spec{Args: []string{"b", "c"}, Script: "agent.sh"})
	fp1 := <-got
	if fp1 != p1 {
		t.Fatalf("Await(1): got %v, want the second process", fp1)
	}
	procs := f.Procs()
	if len(procs) != 2 || procs[0] != p0 || procs[1].Index != 1 {
		t.Fatalf("Procs: got %d processes, want the 2 started in order", len(procs))
	}
	if a := procs[1].Spec.Args; !slices.Equal(a, []string{"b", "c"}) || procs[1].Spec.Script != "agent.sh" {
		t.Errorf("Spec: got args %q script %q, want [b c] and agent.sh", a, procs[1].Spec.Script)
	}

	fp1.Finish(3)
	fp1.Finish(4) // ignored: the first Finish wins
	if code := fakeWait(t, p1); code != 3 {
		t.Errorf("Wait: got %d, want 3", code)
	}
	select {
	case <-procs[0].Done():
		t.Error("first process: got done, want still running")
	default:
	}
	procs[0].Finish(0)
	if code := fakeWait(t, p0); code != 0 {
		t.Errorf("Wait: got %d, want 0", code)
	}
}

func TestFakeEndings(t *testing.T) {
	tests := []struct {
		name    string
		end     func(p *FakeProcess, cancel context.CancelFunc)
		code    int
		stopped bool
	}{
		{"stop", func(p *FakeProcess, _ context.CancelFunc) { p.Stop(); p.Stop() }, ExitSIGTERM, true},
		{"context cancelled", func(_ *FakeProcess, cancel context.CancelFunc) { cancel() }, ExitSIGTERM, true},
		{"destroy", func(p *FakeProcess, _ context.CancelFunc) { p.Destroy(); p.Destroy() }, ExitSIGKILL, false},
		{"finish then stop", func(p *FakeProcess, _ context.CancelFunc) { p.Finish(0); p.Stop() }, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := fakeStart(t, ctx, f, Spec{Args: []string{"x"}})
			fp := f.Procs()[0]
			tt.end(fp, cancel)
			if code := fakeWait(t, p); code != tt.code {
				t.Errorf("Wait: got %d, want %d", code, tt.code)
			}
			if tt.stopped {
				select {
				case <-fp.Stopped():
				case <-time.After(5 * time.Second):
					t.Error("Stopped: got open, want closed")
				}
			}
		})
	}
}

func TestFakeAutoExitAndFailStart(t *testing.T) {
	f := NewFake()
	f.AutoExit(5)
	p := fakeStart(t, context.Background(), f, Spec{Args: []string{"x"}})
	if code := fakeWait(t, p); code != 5 {
		t.Errorf("Wait: got %d, want 5", code)
	}

	boom := errors.New("boom")
	f.FailStart(boom)
	if _, err := f.Start(context.Background(), Spec{Args: []string{"y"}}); !errors.Is(err, boom) {
		t.Errorf("Start: got error %v, want one wrapping %v", err, boom)
	}
	if n := len(f.Procs()); n != 1 {
		t.Errorf("Procs: got %d, want 1 (failed starts are not recorded)", n)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	f.FailStart(nil)
	if _, err := f.Start(cancelled, Spec{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with done ctx: got error %v, want one wrapping %v", err, context.Canceled)
	}
}

func TestFakeAwaitDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := NewFake().Await(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Await: got error %v, want one wrapping %v", err, context.DeadlineExceeded)
	}
}

// Fake can stand in wherever Host is used.
var _ interface {
	Start(context.Context, Spec) (Process, error)
} = (*Fake)(nil)
