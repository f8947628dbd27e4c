package raftfsm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// A snapshot file (`ourci-node operator snapshot save`) is one line of
// JSON, the header, then the body: the ledger's snapshot stream (the
// format Persist writes and ReadSnapshot reads), gzip-compressed. The
// header carries the body's size and SHA-256, so a damaged or truncated
// file is refused before anything is restored.
//
//	{"format":"ourci-snapshot","version":1,"index":N,"saved":"2025-…Z","compression":"gzip","size":BYTES,"sha256":"HEX","jobs":J,"tasks":T,"blobs":B}
//	BYTES bytes of gzip
const (
	backupFormat    = "ourci-snapshot"
	backupVersion   = 1
	backupGzip      = "gzip"
	maxBackupHeader = 4096 // bytes of the header line, newline included
)

// BackupHeader is a snapshot file's first line.
type BackupHeader struct {
	Format      string    `json:"format"`
	Version     int       `json:"version"`
	Index       uint64    `json:"index"` // the ledger's applied index when it was saved
	Saved       time.Time `json:"saved"`
	Compression string    `json:"compression"`
	Size        int64     `json:"size"`   // bytes of the body
	SHA256      string    `json:"sha256"` // hex SHA-256 of the body
	Jobs        int       `json:"jobs"`
	Tasks       int       `json:"tasks"`
	Blobs       int       `json:"blobs"`
}

// ErrBackup marks a snapshot file that cannot be restored: not one, of a
// later version, truncated, or damaged.
var ErrBackup = errors.New("raftfsm: bad snapshot file")

// Backup is a point-in-time copy of the ledger, ready to be written as a
// snapshot file.
type Backup struct {
	header BackupHeader
	line   []byte // the header, encoded, newline included
	v      *view
}

// Backup copies the ledger under the read lock (as Snapshot does) and
// encodes the body once to learn its size and hash; WriteTo encodes it
// again (the encoding is deterministic), so the copy is never held
// encoded in memory or on disk.
func (f *FSM) Backup(saved time.Time) (*Backup, error) {
	f.mu.RLock()
	v, idx := f.state.view(), f.index
	f.mu.RUnlock()
	return newBackup(v, idx, saved)
}

// WriteBackup writes s as a snapshot file saved at index (tests, tools).
func WriteBackup(w io.Writer, s *State, index uint64, saved time.Time) (BackupHeader, error) {
	b, err := newBackup(s.view(), index, saved)
	if err != nil {
		return BackupHeader{}, err
	}
	_, err = b.WriteTo(w)
	return b.header, err
}

func newBackup(v *view, idx uint64, saved time.Time) (*Backup, error) {
	h := sha256.New()
	n, err := v.writeBody(h, idx)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: backup: %w", err)
	}
	b := &Backup{v: v, header: BackupHeader{
		Format: backupFormat, Version: backupVersion, Index: idx, Saved: saved.UTC(), Compression: backupGzip,
		Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Jobs: len(v.jobs), Tasks: len(v.tasks), Blobs: len(v.blobs),
	}}
	line, err := json.Marshal(b.header)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: backup: %w", err)
	}
	b.line = append(line, '\n')
	return b, nil
}

// writeBody writes the compressed snapshot stream and returns its size.
func (v *view) writeBody(w io.Writer, idx uint64) (int64, error) {
	cw := &countWriter{w: w}
	zw := gzip.NewWriter(cw)
	if err := v.write(zw, idx); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// Header is the file's header.
func (b *Backup) Header() BackupHeader { return b.header }

// Len is the file's size in bytes.
func (b *Backup) Len() int64 { return int64(len(b.line)) + b.header.Size }

// WriteTo writes the file: the header, then the body, encoded anew and
// checked against the header on the way.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	k, err := w.Write(b.line)
	if err != nil {
		return int64(k), err
	}
	h := sha256.New()
	n, err := b.v.writeBody(io.MultiWriter(w, h), b.header.Index)
	if err != nil {
		return int64(k) + n, err
	}
	if n != b.header.Size || hex.EncodeToString(h.Sum(nil)) != b.header.SHA256 {
		return int64(k) + n, fmt.Errorf("raftfsm: backup: the body came out different the second time (%d bytes, %d before)", n, b.header.Size)
	}
	return int64(k) + n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadBackup reads a whole snapshot file into a fresh State: the header,
// then the body, hashed as it is decoded. Nothing is returned unless the
// body has the header's size and SHA-256 and decodes completely, at the
// header's index. A damaged file's error says so (the hash) rather than
// what decoding stumbled on first.
func ReadBackup(r io.Reader) (BackupHeader, *State, error) {
	var h BackupHeader
	br := bufio.NewReaderSize(r, maxBackupHeader)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return h, nil, fmt.Errorf("%w: no header line in its first %d bytes (not an ourci snapshot file)", ErrBackup, maxBackupHeader)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return h, nil, fmt.Errorf("%w: the file is empty", ErrBackup)
	case err != nil:
		return h, nil, fmt.Errorf("%w: no header line (not an ourci snapshot file, or cut short): %w", ErrBackup, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(line), &h); err != nil {
		return h, nil, fmt.Errorf("%w: the header is not JSON (not an ourci snapshot file): %w", ErrBackup, err)
	}
	switch {
	case h.Format != backupFormat:
		return h, nil, fmt.Errorf("%w: format %q, want %q (not an ourci snapshot file)", ErrBackup, h.Format, backupFormat)
	case h.Version < 1 || h.Version > backupVersion:
		return h, nil, fmt.Errorf("%w: version %d; this binary reads versions 1 to %d", ErrBackup, h.Version, backupVersion)
	case h.Compression != backupGzip:
		return h, nil, fmt.Errorf("%w: compression %q, want %q", ErrBackup, h.Compression, backupGzip)
	case h.Size < 0 || len(h.SHA256) != 2*sha256.Size:
		return h, nil, fmt.Errorf("%w: the header has no valid size and sha256", ErrBackup)
	}
	sum := sha256.New()
	body := &hashReader{r: io.LimitReader(br, h.Size), h: sum}
	// gzip reads through a bufio.Reader (an io.ByteReader) as it is, so
	// what follows the compressed member stays in it to be counted.
	bufBody := bufio.NewReaderSize(body, 64<<10)
	s, idx, derr := readBody(bufBody)
	// Hash the rest (and see it is nothing) before judging the decode.
	rest, err := io.Copy(io.Discard, bufBody)
	if err != nil {
		return h, nil, fmt.Errorf("%w: reading it: %w", ErrBackup, err)
	}
	if body.n < h.Size {
		return h, nil, fmt.Errorf("%w: the file is truncated: its body has %d bytes, the header says %d", ErrBackup, body.n, h.Size)
	}
	if k, _ := br.Read(make([]byte, 1)); k > 0 {
		return h, nil, fmt.Errorf("%w: bytes follow the body's %d (two files joined, or a damaged header)", ErrBackup, h.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 {
		return h, nil, fmt.Errorf("%w: the file is damaged: its body's SHA-256 is %s, the header says %s", ErrBackup, got, h.SHA256)
	}
	if derr != nil {
		return h, nil, fmt.Errorf("%w: the ledger in it does not decode: %s", ErrBackup, strings.TrimPrefix(derr.Error(), ErrSnapshot.Error()+": "))
	}
	if rest > 0 {
		return h, nil, fmt.Errorf("%w: %d bytes follow the compressed ledger in its body", ErrBackup, rest)
	}
	if idx != h.Index {
		return h, nil, fmt.Errorf("%w: the header says index %d, the ledger in it %d", ErrBackup, h.Index, idx)
	}
	return h, s, nil
}

// readBody decompresses and decodes a body (one gzip member).
func readBody(r io.Reader) (*State, uint64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, 0, err
	}
	zr.Multistream(false)
	s, idx, err := ReadSnapshot(zr)
	if err != nil {
		return nil, 0, err
	}
	// ReadSnapshot read to the end of the stream; the gzip trailer (the
	// member's CRC) has been checked on the way.
	return s, idx, nil
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
