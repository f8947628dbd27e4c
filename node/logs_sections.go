package node

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/httpapi"
	"github.com/ourci/ourci/node/tasklog"
)

// handleLogSections answers the sections of an attempt's sealed log
// (?attempt=N, default the current one), read from any copy of its blob
// (openSealed: this node's, else a holder's), so from any node, a dead
// runner's log too. An attempt not sealed yet is a 409: its sections are
// known once it has ended.
func (n *Node) serveSections(w http.ResponseWriter, r *http.Request, p Principal, id string, attempt int) {
	t := n.taskCopy(id)
	switch {
	case t == nil:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no task %s", id))
		return
	case !httpapi.MayRead(n.fsm, p, t.Job):
		writeError(w, http.StatusForbidden, api.CodeForbidden, httpapi.OtherJobError(p, "the log of task "+id+", which is in another job"))
		return
	case attempt > t.Attempt:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Errorf("task %s has no attempt %d (its attempt is %d)", id, attempt, t.Attempt))
		return
	}
	if attempt == 0 {
		attempt = t.Attempt
	}
	ref, sealed := sealedLog(t, attempt)
	switch {
	case attempt == 0:
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("task %s has not run yet: its log's sections are available once an attempt has ended", id))
		return
	case !sealed:
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Errorf("task %s attempt %d has no sealed log yet (it still runs, or ended a moment ago): its log's sections are available once the attempt ends and its log is sealed", id, attempt))
		return
	}
	e, ok := n.sections.get(ref.Hash)
	if !ok {
		s, f, err := n.openSealed(r.Context(), ref)
		if err != nil {
			n.log.Info("task log sections: no copy of its sealed log to be had", "task", id, "attempt", attempt, "err", err)
			writeError(w, http.StatusServiceUnavailable, api.CodeNotFound, fmt.Errorf("task %s attempt %d: no copy of its sealed log can be read now", id, attempt))
			return
		}
		e.secs, e.truncated, err = s.Sections()
		f.Close()
		if err != nil {
			n.log.Warn("task log sections: reading a sealed log", "task", id, "attempt", attempt, "err", err)
			writeError(w, http.StatusInternalServerError, api.CodeInternal, fmt.Errorf("task %s attempt %d: reading its sealed log: %w", id, attempt, err))
			return
		}
		e.lines = s.Totals().Lines
		n.sections.put(ref.Hash, e)
	}
	out := api.LogSections{SchemaVersion: api.SchemaVersion, Task: id, Attempt: attempt, Lines: e.lines,
		Sections: make([]api.LogSection, len(e.secs)), Truncated: e.truncated}
	for i, sc := range e.secs {
		out.Sections[i] = api.LogSection{Name: sc.Name, Title: sc.Title, Style: sc.Style, FirstLine: sc.First, LastLine: sc.Last,
			Start: sc.Start, End: sc.End, DurationMs: sc.Duration().Milliseconds(), Depth: sc.Depth, Open: sc.Open, Collapsed: sc.Collapsed}
	}
	writeJSON(w, http.StatusOK, out)
}

// sectionsCache keeps the sections of the sealed logs read last, by blob
// hash (a sealed log never changes): a task's page asks for them at each
// load, and parsing them decompresses the whole log. It holds at most
// sectionsCacheLogs logs and sectionsCacheSections sections in all (the
// oldest go first). The zero value is ready to use.
type sectionsCache struct {
	mu    sync.Mutex
	m     map[string]sectionsEntry
	order []string // oldest first
	total int      // sections held
}

type sectionsEntry struct {
	secs      []tasklog.Section
	truncated bool
	lines     int64
}

const (
	sectionsCacheLogs     = 64
	sectionsCacheSections = 4 * tasklog.MaxSections
)

func (c *sectionsCache) get(hash string) (sectionsEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	return e, ok
}

func (c *sectionsCache) put(hash string, e sectionsEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[hash]; ok {
		return
	}
	if c.m == nil {
		c.m = map[string]sectionsEntry{}
	}
	c.m[hash] = e
	c.order = append(c.order, hash)
	c.total += len(e.secs)
	for len(c.order) > sectionsCacheLogs || c.total > sectionsCacheSections && len(c.order) > 1 {
		old := c.order[0]
		c.order = c.order[1:]
		c.total -= len(c.m[old].secs)
		delete(c.m, old)
	}
}
