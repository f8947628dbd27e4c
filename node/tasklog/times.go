package tasklog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// lineTimes indexes a log file by line: where each line starts and when
// its first byte came. It is what sealing a finished attempt's log needs
// beyond the file (Log.Seal): 16 bytes a line, kept while the attempt runs.
type lineTimes struct {
	starts []int64 // offset of each line's first byte
	at     []int64 // its arrival, Unix nanoseconds
	size   int64   // bytes indexed
	open   bool    // the last line has not ended yet
}

// add indexes p, written at the end of the file at now.
func (t *lineTimes) add(p []byte, now time.Time) {
	ns := now.UnixNano()
	for len(p) > 0 {
		if !t.open {
			t.starts = append(t.starts, t.size)
			t.at = append(t.at, ns)
			t.open = true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.size += int64(len(p))
			return
		}
		t.size += int64(i + 1)
		t.open = false
		p = p[i+1:]
	}
}

// leftover indexes the first size bytes of the file at path (what an
// earlier run of the attempt on this node left), all at now.
func (t *lineTimes) leftover(path string, size int64, now time.Time) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	r := io.LimitReader(f, size)
	for {
		k, err := r.Read(buf)
		t.add(buf[:k], now)
		if err != nil {
			break
		}
	}
	if t.size < size { // unreadable: the rest counts as one line
		if !t.open {
			t.starts = append(t.starts, t.size)
			t.at = append(t.at, now.UnixNano())
			t.open = true
		}
		t.size = size
	}
}

// fileSource is a finished log file as Seal reads it: each line read from
// the file where the index says it is, through a window of a MiB or more
// (Seal reads the lines in order and copies each before the next).
type fileSource struct {
	r   io.ReaderAt
	t   *lineTimes
	buf []byte
	off int64 // of buf[0] in the file
	err error // the first read that failed: the seal is void
}

func (s *fileSource) NumLines() int { return len(s.t.starts) }

func (s *fileSource) Line(i int) Line {
	start, end := s.t.starts[i], s.t.size
	if i+1 < len(s.t.starts) {
		end = s.t.starts[i+1]
	}
	at := time.Unix(0, s.t.at[i]).UTC()
	if s.err == nil && (start < s.off || end > s.off+int64(len(s.buf))) {
		k := max(end-start, 1<<20)
		k = min(k, s.t.size-start)
		if int64(cap(s.buf)) < k {
			s.buf = make([]byte, k)
		}
		s.buf, s.off = s.buf[:k], start
		if _, err := s.r.ReadAt(s.buf, start); err != nil && !(errors.Is(err, io.EOF) && start+k == s.t.size) {
			s.err = err
		}
	}
	if s.err != nil {
		return Line{At: at, Offset: start, Data: []byte("\n")} // keeps Seal going; its output is discarded
	}
	return Line{At: at, Offset: start, Data: s.buf[start-s.off : end-s.off]}
}

// ErrUnsealable: the log cannot be sealed (it is still being written, or
// its file is not what was written: a write failed).
var ErrUnsealable = errors.New("tasklog: log cannot be sealed")

// Seal writes the finished log as one sealed blob to w (format.go): the
// output byte for byte, each line with its arrival time. Call it after
// Finish.
func (l *Log) Seal(w io.Writer) (SealInfo, error) {
	l.mu.Lock()
	done, werr := l.done, l.err
	l.mu.Unlock()
	switch {
	case !done:
		return SealInfo{}, fmt.Errorf("%w: the attempt still writes it", ErrUnsealable)
	case werr != nil:
		return SealInfo{}, fmt.Errorf("%w: a write failed: %w", ErrUnsealable, werr)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	f, err := os.Open(l.s.path(l.task, l.attempt))
	if err != nil {
		return SealInfo{}, fmt.Errorf("tasklog: seal: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != l.times.size {
		return SealInfo{}, fmt.Errorf("%w: the file is not what was written (%v)", ErrUnsealable, err)
	}
	src := &fileSource{r: f, t: &l.times}
	info, err := Seal(w, src)
	if err == nil && src.err != nil {
		err = fmt.Errorf("tasklog: seal: reading the log: %w", src.err)
	}
	return info, err
}

// Retire takes an attempt's log file away from the store, once it is
// sealed and recorded elsewhere: when no reader has it open, its path is
// handed to give (which then owns the file: a blob store keeps it as a
// spare for a later put); else it is removed (a reader reads on).
func (s *Store) Retire(task string, attempt int, give func(path string)) error {
	p := s.path(task, attempt)
	key := logKey(task, attempt)
	s.mu.Lock()
	if s.readers[key] > 0 || s.live[key] != nil || give == nil {
		s.mu.Unlock()
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("tasklog: retire: %w", err)
		}
		return nil
	}
	// Renamed under the lock: no Stream opens it from here on.
	retired := p + ".retired"
	err := os.Rename(p, retired)
	s.mu.Unlock()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("tasklog: retire: %w", err)
	}
	give(retired)
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Tee has f see every later write to the log, with its arrival time, in
// the order the file gets them (a stream to other nodes). f must not
// block: the task's writes wait for it. The stream it sees can be cut
// into chunks again from the file (Rechunk), after Tee(nil) too.
func (l *Log) Tee(f func(at time.Time, p []byte)) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.tee = l.startTee(f)
}

// Has reports whether this node holds a file of the attempt's log.
func (s *Store) Has(task string, attempt int) bool {
	_, err := os.Stat(s.path(task, attempt))
	return err == nil
}

// DiskBytes is the size of every log file the store holds.
func (s *Store) DiskBytes() int64 {
	var total int64
	filepath.WalkDir(s.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}
