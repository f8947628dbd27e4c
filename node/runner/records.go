package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// A host task runs in its own process group and, where cgroup v2 can be
// used, in a cgroup of its own under the node's (executor.Cgroups). If the
// node is killed (-9), those live on. The runner records each group in a
// run record, DATA_DIR/run/TASK.ATTEMPT.pid holding "PID STARTTIME"
// (STARTTIME from /proc, so a recycled PID is never hit), and a node that
// starts again kills the groups its previous life left (KillOrphans; the
// node then sweeps its attempt cgroups and workspaces) and hands back every
// attempt a record names.

// Records are the run records in one directory. The zero Records keeps
// none (tests of the runner that need no crash safety).
type Records struct {
	dir    string
	spares spareFiles // emptied records for reuse
}

// NewRecords keeps run records in dir.
func NewRecords(dir string) *Records { return &Records{dir: dir} }

func (r *Records) file(task string, attempt int) string {
	return filepath.Join(r.dir, fmt.Sprintf("%s.%d.pid", task, attempt))
}

// Mark records, before anything of the attempt runs, that this life of the
// node starts it: should the node die, its next life knows the attempt was
// started and hands it back instead of running it again. The returned func
// forgets the record once the attempt is over.
//
// Records are recycled: a forgotten record is emptied and kept as a spare
// (spare-N, which KillOrphans ignores and removes), and the next attempt
// renames a spare into place instead of creating a file. Creating a file is
// the costliest file operation of a task start on ext4 (about 0.6 ms of CPU
// on the bench machine, where a rename or a small write takes 0.02-0.03 ms).
func (r *Records) Mark(task string, attempt int) (func(), error) {
	if r.dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("runner: run dir: %w", err)
	}
	p := r.file(task, attempt)
	if sp := r.spares.take(); sp != "" {
		// Written before it gets its name: a record appears whole.
		if f, err := os.OpenFile(sp, os.O_WRONLY, 0); err == nil {
			_, werr := f.WriteAt([]byte("0 0\n"), 0)
			f.Close()
			if werr == nil && os.Rename(sp, p) == nil {
				return func() { r.spares.recycle(p, r.dir) }, nil
			}
		}
		os.Remove(sp)
	}
	if err := os.WriteFile(p, []byte("0 0\n"), 0o600); err != nil {
		return nil, fmt.Errorf("runner: run record: %w", err)
	}
	return func() { r.spares.recycle(p, r.dir) }, nil
}

// Group adds a started attempt's process group to its run record. It
// overwrites the record in place, in one write: the new line is longer
// than Mark's, so it covers it whole, and a node killed at any point
// leaves either line, never a mix. (Not a new file renamed over it:
// creating a file is the costliest of a task start's file operations.)
func (r *Records) Group(task string, attempt, pid int) {
	if r.dir == "" {
		return
	}
	st, err := startTime(pid)
	if err != nil {
		return
	}
	f, err := os.OpenFile(r.file(task, attempt), os.O_WRONLY, 0)
	if err != nil {
		return
	}
	f.WriteAt([]byte(fmt.Sprintf("%d %d\n", pid, st)), 0)
	f.Close()
}

// KillOrphans kills the process groups a previous life of this node left
// running, as its run records name them, and consumes the records. It
// returns how many groups it found alive, and every attempt the previous
// life had started (task → attempt): those are handed back, never run
// again.
func (r *Records) KillOrphans(log *slog.Logger) (int, map[string]int) {
	started := map[string]int{}
	entries, err := os.ReadDir(r.dir)
	if r.dir == "" || err != nil {
		return 0, started
	}
	killed := 0
	for _, e := range entries {
		p := filepath.Join(r.dir, e.Name())
		b, err := os.ReadFile(p)
		os.Remove(p)
		if err != nil || !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		if task, att, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".pid"), "."); ok {
			if a, err := strconv.Atoi(att); err == nil {
				started[task] = a
			}
		}
		var pid int
		var st uint64
		if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &st); err != nil || pid <= 1 {
			continue
		}
		if now, err := startTime(pid); err != nil || now != st {
			continue // gone, or the PID now belongs to someone else
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err == nil {
			killed++
			log.Warn("killed a task process group left by a previous run of this node", "pid", pid, "attempt_file", e.Name())
		}
	}
	return killed, started
}

// spareFiles are emptied run records kept for reuse (Mark).
type spareFiles struct {
	mu    sync.Mutex
	names []string
	next  int
}

// maxSpares bounds the spare records kept: about the tasks a node runs at once.
const maxSpares = 256

func (s *spareFiles) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		return ""
	}
	sp := s.names[len(s.names)-1]
	s.names = s.names[:len(s.names)-1]
	return sp
}

// recycle forgets the record at p: renamed out of the records first (a node
// dying now leaves a spare, not a record), then emptied and kept.
func (s *spareFiles) recycle(p, dir string) {
	s.mu.Lock()
	if len(s.names) >= maxSpares {
		s.mu.Unlock()
		os.Remove(p)
		return
	}
	s.next++
	sp := filepath.Join(dir, "spare-"+strconv.Itoa(s.next))
	s.mu.Unlock()
	if os.Rename(p, sp) != nil {
		os.Remove(p)
		return
	}
	if os.Truncate(sp, 0) != nil {
		os.Remove(sp)
		return
	}
	s.mu.Lock()
	s.names = append(s.names, sp)
	s.mu.Unlock()
}

// startTime reads a process's start time (clock ticks since boot).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("runner: unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("runner: short /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 overall
}
