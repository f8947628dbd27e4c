package tasklog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Held is an attempt's raw log file the store holds.
type Held struct {
	Task    string
	Attempt int
	Size    int64
	ModTime time.Time // its last write
}

// List returns every attempt's raw log file the store holds (those still
// written to as well), sorted by task, then attempt, and the tasks whose
// directory holds no log file (sorted). Files not named like a log
// (DIR/TASK/ATTEMPT.log) are left out.
func (s *Store) List() (held []Held, empty []string, err error) {
	tasks, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("tasklog: list: %w", err)
	}
	var out []Held
	for _, td := range tasks {
		if !td.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.dir, td.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		} else if err != nil {
			return nil, nil, fmt.Errorf("tasklog: list: %w", err)
		}
		before := len(out)
		for _, f := range files {
			num, ok := strings.CutSuffix(f.Name(), ".log")
			attempt, err := strconv.Atoi(num)
			if !ok || err != nil || attempt < 1 || strconv.Itoa(attempt) != num || !f.Type().IsRegular() {
				continue
			}
			fi, err := f.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, nil, fmt.Errorf("tasklog: list: %w", err)
			}
			out = append(out, Held{Task: td.Name(), Attempt: attempt, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		if len(out) == before && len(files) == 0 {
			empty = append(empty, td.Name())
		}
	}
	slices.SortFunc(out, func(a, b Held) int {
		if c := strings.Compare(a.Task, b.Task); c != 0 {
			return c
		}
		return a.Attempt - b.Attempt
	})
	return out, empty, nil
}

// SealFile seals an attempt's log from its file alone, for a log no Log of
// this process holds (one a previous life of the node left): the output
// byte for byte, every line timed at the file's last write, as the times
// of its lines died with that life. A live attempt's log is refused
// (ErrUnsealable).
func (s *Store) SealFile(task string, attempt int, w io.Writer) (SealInfo, error) {
	key := logKey(task, attempt)
	s.mu.Lock()
	if s.live[key] != nil {
		s.mu.Unlock()
		return SealInfo{}, fmt.Errorf("%w: the attempt still writes it", ErrUnsealable)
	}
	f, err := os.Open(s.path(task, attempt))
	if err == nil {
		s.readers[key]++ // not handed on while read (Retire)
	}
	s.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return SealInfo{}, ErrNoLog
	} else if err != nil {
		return SealInfo{}, fmt.Errorf("tasklog: seal: %w", err)
	}
	defer func() {
		f.Close()
		s.mu.Lock()
		if s.readers[key]--; s.readers[key] <= 0 {
			delete(s.readers, key)
		}
		s.mu.Unlock()
	}()
	fi, err := f.Stat()
	if err != nil {
		return SealInfo{}, fmt.Errorf("tasklog: seal: %w", err)
	}
	var times lineTimes
	times.leftover(f.Name(), fi.Size(), fi.ModTime())
	src := &fileSource{r: f, t: &times}
	info, err := Seal(w, src)
	if err == nil && src.err != nil {
		err = fmt.Errorf("tasklog: seal: reading the log: %w", src.err)
	}
	return info, err
}

// Remove deletes an attempt's raw log file (never a live attempt's: that
// is refused); a reader that has it open reads on. The task's directory
// stays (an attempt starting now may be about to create its file there):
// collection removes it with the task.
func (s *Store) Remove(task string, attempt int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[logKey(task, attempt)] != nil {
		return fmt.Errorf("tasklog: remove %s attempt %d: the attempt still writes it", task, attempt)
	}
	if err := os.Remove(s.path(task, attempt)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tasklog: remove: %w", err)
	}
	return nil
}

// RemoveDir removes a task's directory if it holds nothing. Only for a
// task no attempt of which can start here any more (over, or unknown to
// the ledger): Create makes the directory before its file.
func (s *Store) RemoveDir(task string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	os.Remove(filepath.Join(s.dir, task)) // fails, harmlessly, if not empty
}
