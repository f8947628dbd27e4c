package executor

import (
	"context"
	"fmt"
	"sync"
)

// Fake is an executor for tests of the caller: it records every started
// Spec as a *FakeProcess and lets the test decide how each one ends.
// Nothing is run. The zero value is not usable; call NewFake.
type Fake struct {
	mu       sync.Mutex
	procs    []*FakeProcess
	changed  chan struct{} // closed and replaced whenever procs grows
	onStart  func(*FakeProcess)
	startErr error
}

// NewFake returns a Fake whose processes run until the test finishes them.
func NewFake() *Fake {
	return &Fake{changed: make(chan struct{})}
}

// OnStart sets a hook called (outside the Fake's lock) with every process
// started after it, e.g. to finish some of them at once by their Spec.
func (f *Fake) OnStart(hook func(*FakeProcess)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStart = hook
}

// AutoExit makes every process started after it exit at once with code.
func (f *Fake) AutoExit(code int) {
	f.OnStart(func(p *FakeProcess) { p.Finish(code) })
}

// FailStart makes every later Start return err (nil restores success).
// Failed starts are not recorded.
func (f *Fake) FailStart(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startErr = err
}

// Start records s and returns its FakeProcess. Like Host, it fails when ctx
// is already done, and a later cancellation of ctx calls Stop.
func (f *Fake) Start(ctx context.Context, s Spec) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("executor: not started: %w", err)
	}
	f.mu.Lock()
	if err := f.startErr; err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("executor: fake start: %w", err)
	}
	p := &FakeProcess{Spec: s, Index: len(f.procs), done: make(chan struct{}), stopped: make(chan struct{})}
	f.procs = append(f.procs, p)
	close(f.changed)
	f.changed = make(chan struct{})
	hook := f.onStart
	f.mu.Unlock()

	if hook != nil {
		hook(p)
	}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				p.Stop()
			case <-p.done:
			}
		}()
	}
	return p, nil
}

// Procs returns the processes started so far, in start order.
func (f *Fake) Procs() []*FakeProcess {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*FakeProcess(nil), f.procs...)
}

// Await waits until the i-th (0-based) process has been started and returns
// it, or returns ctx's error.
func (f *Fake) Await(ctx context.Context, i int) (*FakeProcess, error) {
	for {
		f.mu.Lock()
		if i < len(f.procs) {
			p := f.procs[i]
			f.mu.Unlock()
			return p, nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("executor: fake process %d not started: %w", i, ctx.Err())
		}
	}
}

// FakeProcess is a Process started by Fake. Spec and Index never change.
type FakeProcess struct {
	Spec  Spec // as passed to Start
	Index int  // position in start order, from 0

	once     sync.Once     // guards code and done
	done     chan struct{} // closed by the first Finish
	code     int
	stopOnce sync.Once
	stopped  chan struct{} // closed by the first Stop
	mu       sync.Mutex
	destroys int
}

// Finish makes the process exit with code; only the first call counts
// (including the implicit ones of Stop and Destroy).
func (p *FakeProcess) Finish(code int) {
	p.once.Do(func() {
		p.code = code
		close(p.done)
	})
}

// Wait implements Process.
func (p *FakeProcess) Wait() (int, error) {
	<-p.done
	return p.code, nil
}

// Stop implements Process: it records the call and, like a task that
// honours SIGTERM, finishes the process with ExitSIGTERM unless it has
// already finished.
func (p *FakeProcess) Stop() {
	p.stopOnce.Do(func() { close(p.stopped) })
	p.Finish(ExitSIGTERM)
}

// Destroy implements Process: it finishes the process with ExitSIGKILL
// unless it has already finished.
func (p *FakeProcess) Destroy() error {
	p.mu.Lock()
	p.destroys++
	p.mu.Unlock()
	p.Finish(ExitSIGKILL)
	return nil
}

// Stopped is closed once Stop has been called (or the Start context was
// cancelled).
func (p *FakeProcess) Stopped() <-chan struct{} { return p.stopped }

// Done is closed once the process has finished.
func (p *FakeProcess) Done() <-chan struct{} { return p.done }

// Destroyed reports how many times Destroy has been called.
func (p *FakeProcess) Destroyed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.destroys
}
