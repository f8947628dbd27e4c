package tasklog

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
)

// TestFollowFromTheFirstByte: a follow that starts as the attempt's log is
// made never takes the attempt for ended: it finds no log (ErrNoLog, and
// looks again) or a live one it follows to its end; it never returns at an
// empty file's end while the attempt runs. (Create used to make the file
// before it registered the log as live: a follow in between stopped at
// once with nothing, which a streamed `logs -f` showed as an empty log.)
func TestFollowFromTheFirstByte(t *testing.T) {
	s := New(t.TempDir(), 0)
	for i := range 500 {
		task := "t" + strconv.Itoa(i)
		type outcome struct {
			err   error
			early bool // returned before Finish
		}
		finished := make(chan struct{})
		got := make(chan outcome, 1)
		go func() {
			for {
				err := s.Stream(context.Background(), io.Discard, func() {}, task, 1, true)
				if errors.Is(err, ErrNoLog) {
					continue
				}
				select {
				case <-finished:
					got <- outcome{err, false}
				default:
					got <- outcome{err, true}
				}
				return
			}
		}()
		l, err := s.Create(task, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Finish only once the follower is in (it holds the file open) or
		// has returned: what it did before Finish is then known.
		for {
			s.mu.Lock()
			in := s.readers[logKey(task, 1)] > 0
			s.mu.Unlock()
			if in || len(got) > 0 {
				break
			}
		}
		close(finished)
		l.Finish()
		if o := <-got; o.early || o.err != nil {
			t.Fatalf("iteration %d: the follow returned %v before the attempt ended (early %t): it took a log being made for an ended one", i, o.err, o.early)
		}
	}
}
