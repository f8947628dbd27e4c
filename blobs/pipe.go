package blobs

import (
	"errors"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// pipeDepth is how many pooled buffers one hashed copy cycles through: one
// being filled from the source while others are hashed and written.
const pipeDepth = 3

// writebackEvery is how many bytes a hashed copy writes between asking the
// kernel to start writing them to disk (startWriteback), so the flush at the
// end waits for the tail only and dirty pages stay bounded.
const writebackEvery = 16 << 20

// pipeBuf is one buffer of a hashed copy: busy until both the hasher and the
// writer are done with it.
type pipeBuf struct {
	b    []byte
	n    int
	busy sync.WaitGroup
}

// copyHashed copies src to the end of f and into hw, as
// copyBuf(io.MultiWriter(f, hw), src) would, but in a pipeline: the next
// buffer is read from src while the previous one is hashed and written, each
// on its own goroutine, so a transfer takes the time of its slowest stage
// rather than the sum of the three. Every byte read is hashed, and written
// unless a write failed; it returns the bytes read. The file's bytes are
// handed to the disk as they accumulate (startWriteback).
func copyHashed(f *os.File, hw hash.Hash, src io.Reader) (int64, error) {
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	hashC := make(chan *pipeBuf, pipeDepth)
	writeC := make(chan *pipeBuf, pipeDepth)
	var werr error         // the writer's first error: read once every buffer is idle
	var failed atomic.Bool // werr is set
	go func() {
		for pb := range hashC {
			hw.Write(pb.b[:pb.n])
			pb.busy.Done()
		}
	}()
	go func() {
		off, kicked := start, start
		for pb := range writeC {
			if werr == nil {
				if _, werr = f.Write(pb.b[:pb.n]); werr != nil {
					failed.Store(true)
				}
				off += int64(pb.n)
				if off-kicked >= writebackEvery {
					startWriteback(f, kicked, off-kicked)
					kicked = off
				}
			}
			pb.busy.Done()
		}
	}()
	bufs := make([]*pipeBuf, pipeDepth)
	for i := range bufs {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		bufs[i] = &pipeBuf{b: *bp}
	}
	var total int64
	var rerr error
	for i := 0; ; i++ {
		pb := bufs[i%pipeDepth]
		pb.busy.Wait() // the buffer is free
		if failed.Load() {
			break
		}
		pb.n, rerr = io.ReadFull(src, pb.b)
		if pb.n > 0 {
			total += int64(pb.n)
			pb.busy.Add(2)
			hashC <- pb
			writeC <- pb
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				rerr = nil // the end of src: ReadFull's short read
			}
			break
		}
	}
	close(hashC)
	close(writeC)
	for _, pb := range bufs {
		pb.busy.Wait()
	}
	if rerr != nil {
		return total, rerr
	}
	return total, werr
}
