package tasklog

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

// Readers of a Replica while chunks arrive, and of a Sealed at once, see
// consistent bytes (run with -race).
func TestConcurrentReaders(t *testing.T) {
	in := buildArrivals(2 << 20)
	all := concat(in)
	c, rep := NewChunker("t", 1), NewReplica("t", 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := rep.Bytes()
				if !bytes.Equal(b, all[:len(b)]) {
					t.Error("replica bytes differ from the stream's start")
					return
				}
				if n := rep.NumLines(); n > 0 {
					l := rep.Line(n - 1)
					if !bytes.Equal(l.Data, all[l.Offset:l.Offset+int64(len(l.Data))]) {
						t.Error("a replica line differs")
						return
					}
				}
			}
		})
	}
	for _, a := range in {
		for _, ch := range c.Write(a.at, a.p) {
			if err := rep.Apply(ch); err != nil {
				t.Fatal(err)
			}
		}
		if ch, ok := c.Tick(a.at); ok {
			if err := rep.Apply(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rep.Apply(c.Close()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	s := open(t, must(seal(t, rep)))
	for i := range 4 {
		wg.Go(func() {
			if i%2 == 0 {
				got, err := io.ReadAll(s.Range(int64(i)*1000, 300<<10))
				if err != nil || !bytes.Equal(got, all[i*1000:i*1000+300<<10]) {
					t.Errorf("Range: %d bytes, %v", len(got), err)
				}
				return
			}
			if _, err := s.Tail(500); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
