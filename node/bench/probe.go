package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// probe is the FIFO every benchmark task writes its tag into. One
// goroutine reads it and stamps each line as it arrives.
type probe struct {
	path string
	f    *os.File

	mu      sync.Mutex
	seen    map[string]time.Time
	waiters map[string][]chan time.Time
	done    chan struct{}
}

func newProbe(path string) (*probe, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("bench: probe fifo: %w", err)
	}
	// Open for reading and writing: the reader never sees EOF between
	// writers, and a writer's open never waits for a reader.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: probe fifo: %w", err)
	}
	p := &probe{path: path, f: f, seen: map[string]time.Time{}, waiters: map[string][]chan time.Time{}, done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *probe) read() {
	defer close(p.done)
	br := bufio.NewReaderSize(p.f, 64<<10)
	for {
		line, err := br.ReadString('\n')
		now := time.Now()
		if err != nil {
			return
		}
		tag := strings.TrimSpace(line)
		p.mu.Lock()
		if _, ok := p.seen[tag]; !ok {
			p.seen[tag] = now
		}
		ws := p.waiters[tag]
		delete(p.waiters, tag)
		p.mu.Unlock()
		for _, w := range ws {
			w <- now
		}
	}
}

func (p *probe) close() {
	p.f.Close()
}

// command is the shell command that reports tag (a shell expression,
// expanded by the task's sh) to the probe.
func (p *probe) command(tag string) string {
	return fmt.Sprintf("echo \"%s\" > '%s'", tag, p.path)
}

// taskCommand is a benchmark task: it reports "TASK.ATTEMPT" and ends.
func (p *probe) taskCommand() string { return p.command("$OURCI_TASK.$OURCI_ATTEMPT") }

// wait returns when tag arrived (at once if it already did).
func (p *probe) wait(ctx context.Context, tag string, timeout time.Duration) (time.Time, error) {
	p.mu.Lock()
	if t, ok := p.seen[tag]; ok {
		p.mu.Unlock()
		return t, nil
	}
	ch := make(chan time.Time, 1)
	p.waiters[tag] = append(p.waiters[tag], ch)
	p.mu.Unlock()
	timeout = scaled(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t := <-ch:
		return t, nil
	case <-timer.C:
		return time.Time{}, fmt.Errorf("%w: waiting %s for task %s to start", errTimeout, timeout, tag)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// procStart starts `/bin/sh -c 'echo TAG > PROBE'` and returns the time
// from the start call to the line's arrival: a process start measured
// exactly as task starts are.
func (p *probe) procStart(ctx context.Context, tag string) (time.Duration, error) {
	cmd := exec.Command("/bin/sh", "-c", p.command(tag))
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as the host executor does
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	at, err := p.wait(ctx, tag, 10*time.Second)
	cmd.Wait()
	if err != nil {
		return 0, err
	}
	return at.Sub(t0), nil
}

func randKey() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dist is a sample of durations.
type dist []time.Duration

func (d dist) sorted() dist {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// pct returns the q-quantile (nearest rank) of d.
func (d dist) pct(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := d.sorted()
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func (d dist) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

func (d dist) min() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Min(d)
}

func (d dist) mean() time.Duration {
	if len(d) == 0 {
		return 0
	}
	var s time.Duration
	for _, v := range d {
		s += v
	}
	return s / time.Duration(len(d))
}

// summary is "p50 X, p90 Y, p99 Z, max W (n)".
func (d dist) summary() string {
	if len(d) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)", fmtDur(d.pct(0.5)), fmtDur(d.pct(0.9)), fmtDur(d.pct(0.99)), fmtDur(d.max()), len(d))
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second || d <= -time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond || d <= -10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.2f ms", ms(d))
}

// fsyncProbe fsyncs a small write to a file in dir every period until
// stopped, and collects the latencies: how long a Raft log append (one
// fsync) would wait on this disk at that moment.
type fsyncProbe struct {
	stop chan struct{}
	done chan struct{}
	lat  dist
	err  error
}

func startFsyncProbe(dir string, period time.Duration) *fsyncProbe {
	p := &fsyncProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		f, err := os.CreateTemp(dir, "fsync-probe-")
		if err != nil {
			p.err = err
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		buf := make([]byte, 64)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			t0 := time.Now()
			if _, err := f.Write(buf); err != nil {
				p.err = err
				return
			}
			if err := f.Sync(); err != nil {
				p.err = err
				return
			}
			p.lat = append(p.lat, time.Since(t0))
		}
	}()
	return p
}

func (p *fsyncProbe) finish() dist {
	close(p.stop)
	<-p.done
	return p.lat
}

// applyCadence records the intervals between successive applies on one
// replica: under a steady load, the time one Raft round takes.
type applyCadence struct {
	stop    chan struct{}
	done    chan struct{}
	gaps    dist
	entries int
}

func startApplyCadence(fsm interface {
	Watch() (uint64, <-chan struct{})
}) *applyCadence {
	c := &applyCadence{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		last, ch := fsm.Watch()
		var lastT time.Time
		for {
			select {
			case <-c.stop:
				return
			case <-ch:
			}
			now := time.Now()
			idx, nch := fsm.Watch()
			if !lastT.IsZero() {
				c.gaps = append(c.gaps, now.Sub(lastT))
			}
			c.entries += int(idx - last)
			last, lastT, ch = idx, now, nch
		}
	}()
	return c
}

func (c *applyCadence) finish() *applyCadence {
	close(c.stop)
	<-c.done
	return c
}
