package node

import (
	"fmt"
	"testing"

	"github.com/ourci/ourci/node/tasklog"
)

// The sections cache keeps the last logs read, within both bounds.
func TestLogSectionsCache(t *testing.T) {
	var c sectionsCache
	entry := func(n int) sectionsEntry { return sectionsEntry{secs: make([]tasklog.Section, n), lines: int64(n)} }
	for i := range sectionsCacheLogs + 3 {
		c.put(fmt.Sprint(i), entry(1))
	}
	for i, want := range map[int]bool{0: false, 2: false, 3: true, sectionsCacheLogs + 2: true} {
		if _, ok := c.get(fmt.Sprint(i)); ok != want {
			t.Errorf("after %d logs: log %d held %v, want %v", sectionsCacheLogs+3, i, ok, want)
		}
	}
	c.put("big", entry(sectionsCacheSections-10))
	if c.total > sectionsCacheSections || len(c.order) != len(c.m) {
		t.Errorf("%d sections held in %d logs (%d in order), want at most %d", c.total, len(c.m), len(c.order), sectionsCacheSections)
	}
	if e, ok := c.get("big"); !ok || e.lines != sectionsCacheSections-10 {
		t.Errorf("the log put last: %v %d", ok, e.lines)
	}
	c.put("big", entry(1)) // a sealed log does not change: the first stays
	if e, _ := c.get("big"); e.lines != sectionsCacheSections-10 {
		t.Errorf("a second put replaced the entry")
	}
}
