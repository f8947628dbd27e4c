package tasklog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ourci/ourci/node/api"
)

// Store keeps each attempt's output in DataDir/logs/TASK/ATTEMPT.log and
// lets readers follow an attempt while it runs.
type Store struct {
	dir string
	max int64 // per attempt (Config.MaxLogBytes)
	// Now times each line's arrival (nil: time.Now); set before use.
	Now     func() time.Time
	mu      sync.Mutex
	live    map[string]*Log // key: TASK/ATTEMPT, while the attempt runs
	readers map[string]int  // key: TASK/ATTEMPT, Streams that have its file open
}

// New keeps logs in dir, at most max bytes of output per attempt (0: no
// limit).
func New(dir string, max int64) *Store {
	return &Store{dir: dir, max: max, live: map[string]*Log{}, readers: map[string]int{}}
}

func logKey(task string, attempt int) string { return task + "/" + strconv.Itoa(attempt) }

func (s *Store) path(task string, attempt int) string {
	return filepath.Join(s.dir, task, strconv.Itoa(attempt)+".log")
}

// Log is the writer for a running attempt's output. It never fails its
// writer (a task blocked on a pipe nobody reads would hang): past max bytes
// it drops the output behind a marker line, and once a write to the disk
// failed it drops everything, records the error and closes failed, so the
// runner stops the attempt and reports an infrastructure failure.
type Log struct {
	s       *Store
	key     string
	task    string
	attempt int
	f       *os.File
	max     int64 // bytes of the task's own output kept; 0: no limit

	mu      sync.Mutex
	grew    chan struct{} // closed and replaced on every write and at the end
	done    bool
	written int64 // bytes of output written (notes not counted)
	capped  bool
	err     error         // the first write that failed
	failed  chan struct{} // closed when err is set (Failed)

	mask func([]byte) []byte // masks the node's notes (maskNotes)

	tee   func(at time.Time, p []byte) // sees every write, in order (Tee); under wmu
	wmu   sync.Mutex                   // serializes writes to the file
	times lineTimes                    // where each line of the file starts and when it came (times.go); under wmu
	teed  *teeStart                    // where the latest tee's stream begins (rechunk.go); under wmu
}

// Create opens the log of an attempt (adding to a leftover of a previous
// run of it on this node).
func (s *Store) Create(task string, attempt int) (*Log, error) {
	p := s.path(task, attempt)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("tasklog: task log: %w", err)
	}
	// The file appears and the log is registered as live at once (under
	// s.mu, which Stream holds while it looks): a follower that found the
	// file but no live log would take the attempt for ended and stop at
	// its empty end.
	s.mu.Lock()
	defer s.mu.Unlock()
	// Never truncate: an attempt that runs again on this node (a restored
	// backup, a previous life's leftover) adds to its log, it does not
	// wipe what it printed before.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tasklog: task log: %w", err)
	}
	l := &Log{s: s, key: logKey(task, attempt), task: task, attempt: attempt, f: f, grew: make(chan struct{}), max: s.max, failed: make(chan struct{})}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		l.times.leftover(p, fi.Size(), s.now())
		l.write([]byte("\n[ourci] ---- this attempt runs again on this node; its earlier output is above ----\n"))
	}
	s.live[l.key] = l
	return l, nil
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	keep := p
	cut := false
	if l.err != nil || l.capped {
		keep = nil
	} else if l.max > 0 && l.written+int64(len(p)) > l.max {
		keep, cut = p[:l.max-l.written], true
		l.capped = true
	}
	l.written += int64(len(keep))
	l.mu.Unlock()
	if len(keep) > 0 {
		l.write(keep)
	}
	if cut {
		l.write([]byte(fmt.Sprintf("\n[ourci] the output passed %s (--max-log-bytes): the rest of it is dropped; the task runs on\n", api.ByteSize(l.max))))
	}
	l.signal(false)
	return len(p), nil
}

// writeNote writes a note on a line of its own: after the output's
// unended last line, a newline first.
func (l *Log) writeNote(b []byte) {
	l.wmu.Lock()
	open := l.times.open
	l.wmu.Unlock()
	if open {
		b = append([]byte("\n"), b...)
	}
	l.write(b)
}

// write writes to the file, timing the lines it starts; the first failure
// is kept and signalled.
func (l *Log) write(p []byte) {
	l.wmu.Lock() // the file, its line times and the tee in the same order
	defer l.wmu.Unlock()
	now := l.s.now()
	l.times.add(p, now)
	if l.tee != nil {
		l.tee(now, p)
	}
	if _, err := l.f.Write(p); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
			close(l.failed)
		}
		l.mu.Unlock()
	}
}

// Note writes a line of the node's own about the attempt into its log
// (past the output limit too), masked as the output is.
func (l *Log) Note(format string, args ...any) {
	l.mu.Lock()
	broken, mask := l.err != nil, l.mask
	l.mu.Unlock()
	if !broken {
		b := []byte(fmt.Sprintf("[ourci] "+format+"\n", args...))
		if mask != nil {
			b = mask(b)
		}
		l.writeNote(b)
	}
	l.signal(false)
}

// Failed is closed when a write to the disk failed (WriteErr says which).
func (l *Log) Failed() <-chan struct{} { return l.failed }

// Dir is the directory the store keeps its logs in (a directory per task).
func (s *Store) Dir() string { return s.dir }

// MaskNotes has every later Note masked by mask.
func (l *Log) MaskNotes(mask func([]byte) []byte) {
	l.mu.Lock()
	l.mask = mask
	l.mu.Unlock()
}

// WriteErr returns the first write that failed, and how much of the output
// had been written before it.
func (l *Log) WriteErr() (error, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err, l.written
}

func (l *Log) signal(done bool) {
	l.mu.Lock()
	ch := l.grew
	l.grew = make(chan struct{})
	if done {
		l.done = true
	}
	l.mu.Unlock()
	close(ch)
}

// wait returns a channel closed at the next write or the end, and whether
// the log has ended.
func (l *Log) wait() (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grew, l.done
}

// Finish closes the log; followers read to its end and stop.
func (l *Log) Finish() {
	l.f.Close()
	l.s.mu.Lock()
	delete(l.s.live, l.key)
	l.s.mu.Unlock()
	l.signal(true)
}

// Live is the log of an attempt that is still running here, or nil.
func (s *Store) Live(task string, attempt int) *Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[logKey(task, attempt)]
}

// ErrNoLog means this node holds no output for the attempt.
var ErrNoLog = errors.New("tasklog: no log for this attempt on this node")

// Stream copies an attempt's output to w, calling flush after each chunk.
// With follow it keeps going until the attempt's log ends or ctx is done.
func (s *Store) Stream(ctx context.Context, w io.Writer, flush func(), task string, attempt int, follow bool) error {
	key := logKey(task, attempt)
	s.mu.Lock()
	live := s.live[key] // look before opening: no write can be missed
	f, err := os.Open(s.path(task, attempt))
	if err == nil {
		s.readers[key]++ // its file is not handed on while read (Retire)
	}
	s.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoLog
	}
	if err != nil {
		return fmt.Errorf("tasklog: task log: %w", err)
	}
	defer func() {
		f.Close()
		s.mu.Lock()
		if s.readers[key]--; s.readers[key] <= 0 {
			delete(s.readers, key)
		}
		s.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		var grew <-chan struct{}
		done := true
		if live != nil {
			grew, done = live.wait()
		}
		for {
			k, err := f.Read(buf)
			if k > 0 {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("tasklog: task log: %w", err)
			}
		}
		flush()
		if !follow || done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-grew:
		}
	}
}
