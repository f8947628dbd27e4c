package lograte

import (
	"sync"
	"time"
)

// DefaultEvery is the interval a Limiter uses when Every is zero.
const DefaultEvery = 10 * time.Second

// maxSources bounds the sources remembered; past it (spoofed UDP source
// addresses, say) sources share one entry, Overflow.
const maxSources = 1024

// Overflow is the key that stands for every source once maxSources are
// remembered.
const Overflow = "(other sources)"

// Limiter decides which lines get written. The zero value is ready: one
// line per source every DefaultEvery. It is safe for concurrent use.
type Limiter struct {
	Every time.Duration    // interval per source; 0: DefaultEvery
	Now   func() time.Time // nil: time.Now

	mu      sync.Mutex
	sources map[string]*entry
}

type entry struct {
	last       time.Time // when the last line for the source was written
	suppressed int       // lines dropped since
}

// Allow reports whether a line for source may be written now and, if so,
// how many lines for it were suppressed since the last one written (add it
// to the line, e.g. as "suppressed"). The key that was used is returned
// too: source, or Overflow when too many sources are remembered.
func (l *Limiter) Allow(source string) (ok bool, suppressed int, key string) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sources == nil {
		l.sources = map[string]*entry{}
	}
	e, found := l.sources[source]
	if !found && len(l.sources) >= maxSources {
		l.forget(t, every)
	}
	if !found && len(l.sources) >= maxSources {
		source = Overflow
		e, found = l.sources[source]
	}
	if !found {
		l.sources[source] = &entry{last: t}
		return true, 0, source
	}
	if t.Sub(e.last) < every {
		e.suppressed++
		return false, 0, source
	}
	n := e.suppressed
	e.last, e.suppressed = t, 0
	return true, n, source
}

// forget drops the sources whose interval passed with nothing suppressed:
// their next line is written at once either way.
func (l *Limiter) forget(t time.Time, every time.Duration) {
	for k, e := range l.sources {
		if e.suppressed == 0 && t.Sub(e.last) >= every {
			delete(l.sources, k)
		}
	}
}
