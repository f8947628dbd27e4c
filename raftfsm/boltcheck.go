package raftfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkBoltFile verifies the structure of a bbolt file with plain reads: no
// mmap and no unsafe, so damage shows as an error here instead of as a
// panic (or a fault that recover cannot catch) in bbolt, which trusts its
// pages blindly, possibly much later and inside one of Raft's goroutines.
// (bbolt's own Tx.Check walks the pages in a goroutine of its own, where a
// panic on a garbage page cannot be recovered.)
//
// It checks what bbolt relies on: a valid meta page (bbolt's rule: the
// newer of the two that validates), a file long enough for the pages the
// meta page counts, and for every page a bucket reaches: inside the file,
// the page's own header naming it, a branch or leaf page, its elements and
// their keys and values inside the page, keys in order, no page reached
// twice or both reached and free. Pages neither reached nor free are
// wasted space, not damage, and are not reported.
func checkBoltFile(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	c := &boltChecker{f: f, size: info.Size()}
	return c.check()
}

// The bbolt v1 file format (go.etcd.io/bbolt v1.3.x), in host byte order.
const (
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltPageHeaderSize = 16 // id uint64, flags uint16, count uint16, overflow uint32
	boltMetaSize       = 64 // magic, version, pageSize, flags uint32; root {pgid, seq}; freelist, pgid, txid, checksum uint64
	boltMetaSumOffset  = 56 // the checksum covers the meta's bytes before it
	boltElementSize    = 16 // a branch element (pos, ksize uint32, pgid uint64) and a leaf element (flags, pos, ksize, vsize uint32)
	boltBucketHeader   = 16 // root pgid, sequence uint64
	boltNoFreelist     = ^uint64(0)

	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01

	boltMaxDepth = 64 // far deeper than any real tree; bounds a walk through garbage
)

var bo = binary.NativeEndian

type boltMeta struct {
	magic, version, pageSize, flags uint32
	root, freelist, pgid, txid      uint64
	checksum                        uint64
	sum                             uint64 // computed
}

func parseBoltMeta(b []byte) boltMeta {
	h := fnv.New64a()
	h.Write(b[:boltMetaSumOffset])
	return boltMeta{
		magic: bo.Uint32(b[0:]), version: bo.Uint32(b[4:]), pageSize: bo.Uint32(b[8:]), flags: bo.Uint32(b[12:]),
		root: bo.Uint64(b[16:]), freelist: bo.Uint64(b[32:]), pgid: bo.Uint64(b[40:]), txid: bo.Uint64(b[48:]),
		checksum: bo.Uint64(b[56:]), sum: h.Sum64(),
	}
}

// validate is bbolt's meta.validate.
func (m boltMeta) validate() error {
	switch {
	case m.magic != boltMagic:
		return errors.New("no bbolt magic number")
	case m.version != boltVersion:
		return fmt.Errorf("bbolt format version %d, want %d", m.version, boltVersion)
	case m.checksum != 0 && m.checksum != m.sum:
		return errors.New("checksum mismatch")
	}
	return nil
}

type boltChecker struct {
	f        *os.File
	size     int64
	pageSize int64
	pages    uint64 // the meta page's high-water mark: pages in use are below it
	reached  map[uint64]bool
	free     map[uint64]bool
}

func (c *boltChecker) readAt(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > c.size || n > c.size-off {
		return nil, fmt.Errorf("%d bytes at offset %d lie past the end of the %d-byte file", n, off, c.size)
	}
	b := make([]byte, n)
	if _, err := c.f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func (c *boltChecker) check() error {
	if c.size == 0 {
		return errors.New("the file is empty")
	}
	if c.size < boltPageHeaderSize+boltMetaSize {
		return fmt.Errorf("the file is truncated: %d bytes, too short for a meta page", c.size)
	}
	b, err := c.readAt(0, boltPageHeaderSize+boltMetaSize)
	if err != nil {
		return err
	}
	m0 := parseBoltMeta(b[boltPageHeaderSize:])
	err0 := m0.validate()
	// bbolt takes the page size from meta page 0, or, when that one is
	// invalid, assumes the OS page size to find meta page 1.
	c.pageSize = int64(os.Getpagesize())
	if err0 == nil {
		c.pageSize = int64(m0.pageSize)
	}
	if c.pageSize < 1024 || c.pageSize > 1<<20 || c.pageSize&(c.pageSize-1) != 0 {
		return fmt.Errorf("meta page 0: page size %d", c.pageSize)
	}
	m1, err1 := boltMeta{}, error(nil)
	if b, err := c.readAt(c.pageSize, boltPageHeaderSize+boltMetaSize); err != nil {
		err1 = fmt.Errorf("the file is truncated: %w", err)
	} else {
		m1 = parseBoltMeta(b[boltPageHeaderSize:])
		err1 = m1.validate()
	}
	// bbolt's DB.meta: the one with the higher transaction ID if it is
	// valid, else the other.
	a, errA, bm, errB := m0, err0, m1, err1
	if m1.txid > m0.txid {
		a, errA, bm, errB = m1, err1, m0, err0
	}
	m := a
	switch {
	case errA == nil:
	case errB == nil:
		m = bm
	default:
		return fmt.Errorf("neither meta page is valid (meta page 0: %v; meta page 1: %v)", err0, err1)
	}
	if int64(m.pageSize) != c.pageSize {
		return fmt.Errorf("the meta pages disagree on the page size (%d, %d)", c.pageSize, m.pageSize)
	}
	c.pages = m.pgid
	if c.pages < 2 || c.pages > uint64(c.size/c.pageSize)+1 || int64(c.pages)*c.pageSize > c.size {
		return fmt.Errorf("the file is truncated: %d bytes, but its meta page counts %d pages of %d bytes", c.size, c.pages, c.pageSize)
	}
	c.reached = map[uint64]bool{0: true, 1: true}
	c.free = map[uint64]bool{}
	if m.freelist != boltNoFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.walkBucket(m.root, 0, "the root bucket")
}

// page reads page id with its overflow pages after checking its header.
func (c *boltChecker) page(id uint64, from string) (flags, count uint16, body []byte, err error) {
	if id < 2 || id >= c.pages {
		return 0, 0, nil, fmt.Errorf("%s points at page %d, outside the file's %d pages", from, id, c.pages)
	}
	h, err := c.readAt(int64(id)*c.pageSize, boltPageHeaderSize)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := bo.Uint64(h); got != id {
		return 0, 0, nil, fmt.Errorf("page %d (reached from %s) is garbage: its header names page %d", id, from, got)
	}
	flags, count = bo.Uint16(h[8:]), bo.Uint16(h[10:])
	overflow := uint64(bo.Uint32(h[12:]))
	if id+overflow >= c.pages {
		return 0, 0, nil, fmt.Errorf("page %d: %d overflow pages run past the file's %d pages", id, overflow, c.pages)
	}
	for p := id; p <= id+overflow; p++ {
		if c.reached[p] {
			return 0, 0, nil, fmt.Errorf("page %d is in use twice (again from %s)", p, from)
		}
		if c.free[p] {
			return 0, 0, nil, fmt.Errorf("page %d is in use (from %s) and on the freelist", p, from)
		}
		c.reached[p] = true
	}
	all, err := c.readAt(int64(id)*c.pageSize, int64(overflow+1)*c.pageSize)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("page %d: %w", id, err)
	}
	return flags, count, all, nil
}

func (c *boltChecker) checkFreelist(id uint64) error {
	flags, count, p, err := c.page(id, "the meta page's freelist")
	if err != nil {
		return err
	}
	if flags&boltFreelistPage == 0 {
		return fmt.Errorf("page %d: the meta page's freelist is a page of type %#x", id, flags)
	}
	first, n := int64(boltPageHeaderSize), uint64(count)
	if count == 0xFFFF { // the real count is the first element
		if len(p) < boltPageHeaderSize+8 {
			return fmt.Errorf("page %d: freelist too short", id)
		}
		n, first = bo.Uint64(p[boltPageHeaderSize:]), boltPageHeaderSize+8
	}
	if n > uint64(len(p)-int(first))/8 {
		return fmt.Errorf("page %d: the freelist claims %d pages, more than the page holds", id, n)
	}
	for i := uint64(0); i < n; i++ {
		f := bo.Uint64(p[first+int64(i)*8:])
		switch {
		case f < 2 || f >= c.pages:
			return fmt.Errorf("page %d: the freelist names page %d, outside the file's %d pages", id, f, c.pages)
		case c.free[f]:
			return fmt.Errorf("page %d: the freelist names page %d twice", id, f)
		case c.reached[f]:
			return fmt.Errorf("page %d: the freelist names page %d, which is in use", id, f)
		}
		c.free[f] = true
	}
	return nil
}

func (c *boltChecker) walkBucket(root uint64, depth int, from string) error {
	flags, count, p, err := c.page(root, from)
	if err != nil {
		return err
	}
	return c.walkPage(root, flags, count, p, depth, from)
}

// walkPage checks one branch or leaf page (p holds it whole, header first;
// id 0 for an inline bucket's page) and everything below it.
func (c *boltChecker) walkPage(id uint64, flags, count uint16, p []byte, depth int, from string) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("page %d: the tree is more than %d levels deep (a loop in garbage)", id, boltMaxDepth)
	}
	name := fmt.Sprintf("page %d", id)
	if id == 0 {
		name = "the inline page of " + from
	}
	if boltPageHeaderSize+int(count)*boltElementSize > len(p) {
		return fmt.Errorf("%s: %d elements do not fit in it", name, count)
	}
	var prev []byte
	for i := 0; i < int(count); i++ {
		e := boltPageHeaderSize + i*boltElementSize
		var ksize, vsize, pos uint32
		var eflags uint32
		var child uint64
		switch {
		case flags&boltBranchPage != 0:
			pos, ksize, child = bo.Uint32(p[e:]), bo.Uint32(p[e+4:]), bo.Uint64(p[e+8:])
		case flags&boltLeafPage != 0:
			eflags, pos, ksize, vsize = bo.Uint32(p[e:]), bo.Uint32(p[e+4:]), bo.Uint32(p[e+8:]), bo.Uint32(p[e+12:])
		default:
			return fmt.Errorf("%s (reached from %s) is neither a branch nor a leaf page (type %#x)", name, from, flags)
		}
		start := uint64(e) + uint64(pos)
		end := start + uint64(ksize) + uint64(vsize)
		if end > uint64(len(p)) {
			return fmt.Errorf("%s: element %d lies past the end of the page", name, i)
		}
		key := p[start : start+uint64(ksize)]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("%s: its keys are out of order at element %d", name, i)
		}
		prev = key
		here := fmt.Sprintf("%s element %d", name, i)
		if flags&boltBranchPage != 0 {
			if err := c.walkBucket(child, depth+1, here); err != nil {
				return err
			}
			continue
		}
		if eflags&boltBucketLeaf == 0 {
			continue
		}
		v := p[start+uint64(ksize) : end]
		if len(v) < boltBucketHeader {
			return fmt.Errorf("%s: a bucket header of %d bytes", here, len(v))
		}
		sub := fmt.Sprintf("bucket %q (%s)", key, here)
		if r := bo.Uint64(v); r != 0 {
			if err := c.walkBucket(r, depth+1, sub); err != nil {
				return err
			}
			continue
		}
		in := v[boltBucketHeader:]
		if len(in) < boltPageHeaderSize {
			return fmt.Errorf("%s: an inline bucket of %d bytes", sub, len(in))
		}
		iflags, icount := bo.Uint16(in[8:]), bo.Uint16(in[10:])
		if iflags&boltLeafPage == 0 {
			return fmt.Errorf("%s: its inline page is not a leaf page (type %#x)", sub, iflags)
		}
		if err := c.walkPage(0, iflags, icount, in, depth+1, sub); err != nil {
			return err
		}
	}
	if flags&boltBranchPage != 0 && count == 0 {
		return fmt.Errorf("%s: a branch page without elements", name)
	}
	return nil
}
