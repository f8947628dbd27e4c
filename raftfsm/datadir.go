package raftfsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ErrDamaged marks a data directory whose Raft files cannot be trusted: a
// damaged raft.db (truncated, pages overwritten) or snapshot. The node must
// not start on it; see DataError for the file.
var ErrDamaged = errors.New("raftfsm: damaged data directory")

// ErrInUse marks a data directory another process (a running node, or an
// operator command) holds.
var ErrInUse = errors.New("raftfsm: data directory in use")

// DataError says which file of a data directory is damaged or locked. It
// matches ErrDamaged or ErrInUse with errors.Is.
type DataError struct {
	Dir    string // the data directory
	File   string // the damaged or locked file
	Kind   error  // ErrDamaged or ErrInUse
	Detail string // what was found, for people (no package prefixes)
	Err    error  // the cause, if any
}

func (e *DataError) Error() string {
	if e.Kind == ErrInUse {
		return fmt.Sprintf("raftfsm: data directory %s is in use by another process (%s is locked)", e.Dir, e.File)
	}
	return fmt.Sprintf("raftfsm: %s is damaged: %s", e.File, e.Detail)
}

func (e *DataError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func damaged(dir, file, detail string, cause error) *DataError {
	return &DataError{Dir: dir, File: file, Kind: ErrDamaged, Detail: detail, Err: cause}
}

// lockWait bounds how long opening a data directory waits for another
// process to let go of raft.db (a node that is just exiting) before
// failing with ErrInUse.
const lockWait = time.Second

const raftDB = "raft.db"

// dirState is what inspecting a data directory found.
type dirState struct {
	hasDB    bool                 // raft.db exists
	term     uint64               // the stable store's current term
	lastLog  uint64               // the log's last index (0: empty)
	snaps    []*raft.SnapshotMeta // newest first, as raft lists them
	restored bool                 // the newest snapshot was restored into the FSM given
}

func (s *dirState) hasState() bool { return s.term != 0 || s.lastLog != 0 || len(s.snaps) > 0 }

// inspect checks a data directory before Raft opens it, so that damage is
// an error naming the file instead of a panic in bbolt or raft later: the
// structure of raft.db (checkBoltFile), every log entry (decodes, as raft
// and Apply will decode it, at the index its key says), the stable store's
// values, every snapshot's metadata, and that the log continues where the
// newest snapshot ends (raft panics on a missing entry). With fsm set, the
// newest snapshot is also read (its CRC checked) and restored into fsm, so
// that raft need not restore it again. raft.db is held with a shared lock
// meanwhile: a running node holds an exclusive one, so a directory in use
// fails with ErrInUse.
func inspect(dir string, fsm *FSM) (st *dirState, err error) {
	path := filepath.Join(dir, raftDB)
	defer func() {
		// bbolt and raft trust the bytes they read; whatever slipped past
		// the checks must not take the process down.
		if p := recover(); p != nil {
			st, err = nil, damaged(dir, path, fmt.Sprintf("reading it failed: %v", p), nil)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	st = &dirState{}
	snaps, err := checkSnapshots(dir)
	if err != nil {
		return nil, err
	}
	st.snaps = snaps
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if len(snaps) > 0 {
			return nil, damaged(dir, path, "it is missing, yet the directory holds snapshots (the Raft term and vote are lost with it)", err)
		}
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("raftfsm: open %s: %w", path, err)
	}
	defer f.Close()
	st.hasDB = true
	if err := lockShared(f, lockWait); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, &DataError{Dir: dir, File: path, Kind: ErrInUse, Err: err}
		}
		return nil, fmt.Errorf("raftfsm: lock %s: %w", path, err)
	}
	if err := checkBoltFile(f); err != nil {
		return nil, damaged(dir, path, err.Error(), err)
	}
	var snapIndex uint64
	if len(snaps) > 0 {
		snapIndex = snaps[0].Index
	}
	if err := checkLog(path, snapIndex, st); err != nil {
		return nil, damaged(dir, path, err.Error(), err)
	}
	if fsm != nil && len(snaps) > 0 {
		if err := restoreNewest(dir, snaps[0], fsm); err != nil {
			return nil, err
		}
		st.restored = true
	}
	return st, nil
}

// lockShared takes a shared flock on f, retrying until wait passed (then
// bbolt.ErrTimeout), the way bbolt locks its file.
func lockShared(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return bbolt.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLog reads raft.db through bbolt (its structure checked already):
// raft-boltdb's buckets, every log entry and the stable store's values.
func checkLog(path string, snapIndex uint64, st *dirState) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		logs, conf := tx.Bucket([]byte("logs")), tx.Bucket([]byte("conf"))
		if logs == nil || conf == nil {
			return errors.New("it has no Raft log or stable store (raft-boltdb's logs and conf buckets)")
		}
		var prev, missing uint64 // missing: the highest index absent below an entry present
		c := logs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("a log key of %d bytes", len(k))
			}
			idx := binary.BigEndian.Uint64(k)
			if idx > prev+1 {
				missing = idx - 1
			}
			prev = idx
			var l raft.Log
			if err := codec.NewDecoderBytes(v, &codec.MsgpackHandle{}).Decode(&l); err != nil {
				return fmt.Errorf("log entry %d does not decode: %v", idx, err)
			}
			if l.Index != idx {
				return fmt.Errorf("log entry %d says it is entry %d", idx, l.Index)
			}
			if l.Type == raft.LogCommand {
				if _, err := Decode(l.Data); err != nil {
					return fmt.Errorf("log entry %d holds a ledger command that does not decode: %v", idx, strings.TrimPrefix(err.Error(), "raftfsm: "))
				}
			}
		}
		st.lastLog = prev
		if missing > snapIndex {
			return fmt.Errorf("log entries up to %d are missing, and the newest snapshot ends at %d", missing, snapIndex)
		}
		for _, key := range []string{"CurrentTerm", "LastVoteTerm"} {
			if v := conf.Get([]byte(key)); v != nil && len(v) != 8 {
				return fmt.Errorf("the stable store's %s has %d bytes, want 8", key, len(v))
			}
		}
		if v := conf.Get([]byte("CurrentTerm")); v != nil {
			st.term = binary.BigEndian.Uint64(v)
		}
		return nil
	})
}

// snapshotDir is where raft's FileSnapshotStore keeps snapshots.
func snapshotDir(dir string) string { return filepath.Join(dir, "snapshots") }

// fileSnapshotMeta is raft's meta.json.
type fileSnapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// checkSnapshots checks every snapshot's meta.json (raft skips one it
// cannot read, and would then start from an older snapshot and a log with
// a hole) and returns the snapshots newest first, as raft orders them.
func checkSnapshots(dir string) ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(snapshotDir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftfsm: snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft ignores these too (a .tmp is an unfinished snapshot)
		}
		if _, err := readSnapshotMeta(dir, e.Name()); err != nil {
			return nil, err
		}
	}
	store, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	return store.List()
}

func readSnapshotMeta(dir, id string) (*fileSnapshotMeta, error) {
	path := filepath.Join(snapshotDir(dir), id, "meta.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, damaged(dir, path, "it cannot be read", err)
	}
	var m fileSnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, damaged(dir, path, fmt.Sprintf("it is not a snapshot's metadata: %v", err), err)
	}
	if m.Version < raft.SnapshotVersionMin || m.Version > raft.SnapshotVersionMax {
		return nil, damaged(dir, path, fmt.Sprintf("snapshot version %d", m.Version), nil)
	}
	if m.ID != id {
		return nil, damaged(dir, path, fmt.Sprintf("it names snapshot %q, in directory %q", m.ID, id), nil)
	}
	return &m, nil
}

// restoreNewest checks the newest snapshot's state.bin against its CRC
// while decoding it, and only then swaps it into fsm: a snapshot raft
// could not restore would send it to an older one, and a log with a hole.
func restoreNewest(dir string, snap *raft.SnapshotMeta, fsm *FSM) error {
	m, err := readSnapshotMeta(dir, snap.ID)
	if err != nil {
		return err
	}
	path := filepath.Join(snapshotDir(dir), snap.ID, "state.bin")
	f, err := os.Open(path)
	if err != nil {
		return damaged(dir, path, "it cannot be read", err)
	}
	defer f.Close()
	sum := crc64.New(crc64.MakeTable(crc64.ECMA))
	r := io.TeeReader(f, sum)
	s, idx, derr := ReadSnapshot(r)
	if _, err := io.Copy(io.Discard, r); err != nil { // what a failed decode left, for the CRC
		return damaged(dir, path, "it cannot be read", err)
	}
	if !bytes.Equal(sum.Sum(nil), m.CRC) {
		return damaged(dir, path, fmt.Sprintf("its CRC does not match its meta.json (the file is damaged or truncated; meta.json says %d bytes)", m.Size), nil)
	}
	if derr != nil {
		return damaged(dir, path, "the ledger in it does not decode: "+strings.TrimPrefix(derr.Error(), ErrSnapshot.Error()+": "), derr)
	}
	fsm.swap(s, idx)
	return nil
}

// swap replaces the FSM's ledger, as Restore does.
func (f *FSM) swap(s *State, idx uint64) {
	f.mu.Lock()
	f.state, f.index = s, idx
	ch := f.change
	f.change = make(chan struct{})
	f.mu.Unlock()
	close(ch)
}
