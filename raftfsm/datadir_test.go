package raftfsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/ourci/ourci/node/nodetest/wait"
)

// dataDir is a data directory a one-node Raft wrote and left, stopped.
type dataDir struct {
	dir  string
	hash [32]byte // the ledger it holds
	idx  uint64   // its last applied index
}

// makeDataDir runs a one-node Raft in a new directory, proposes jobs spawns
// (task IDs marker-task-NNNN, which appear verbatim in raft.db) and, with
// snapshot, takes a snapshot half-way that compacts the log behind it.
func makeDataDir(t *testing.T, jobs int, snapshot bool) dataDir {
	t.Helper()
	c := newCluster(t)
	if snapshot {
		c.tune = func(rc *RaftConfig) {
			rc.TrailingLogs = 2
			rc.SnapshotThreshold = 1 << 20
			rc.SnapshotInterval = time.Hour
		}
	}
	dir := t.TempDir()
	n := c.start("solo", "secret", dir)
	if err := n.r.Bootstrap("solo"); err != nil {
		t.Fatalf("Bootstrap: got error %v, want nil", err)
	}
	c.waitLeader(n)
	var idx uint64
	for i := 0; i < jobs; i++ {
		_, idx = propose(t, n, spawnRoot(fmt.Sprintf("job-%04d", i), fmt.Sprintf("marker-task-%04d", i)))
		if snapshot && i == jobs/2 {
			if err := n.r.Snapshot().Error(); err != nil {
				t.Fatalf("Snapshot: got error %v, want nil", err)
			}
		}
	}
	waitIndex(t, n, idx)
	h, _ := fsmHash(n.fsm)
	c.stop(n)
	return dataDir{dir: dir, hash: h, idx: idx}
}

// copyDir copies a data directory (files and directories only).
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
	return to
}

// openDir opens Raft on dir as a node would, without bootstrapping.
func openDir(t *testing.T, dir string) (*Raft, *FSM, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	fsm := NewFSM()
	r, err := OpenRaft(RaftConfig{ID: "solo", Dir: dir, Listener: l, Secret: []byte("secret"), LogOutput: io.Discard}, fsm)
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	t.Cleanup(func() { r.Close() })
	return r, fsm, nil
}

// boltPages returns raft.db's page size and the pages in use (the meta
// page's high-water mark), read the way checkBoltFile reads them.
func boltPages(t *testing.T, path string) (pageSize, pages int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m0 := parseBoltMeta(b[boltPageHeaderSize:])
	m1 := parseBoltMeta(b[int64(m0.pageSize)+boltPageHeaderSize:])
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	return int64(m.pageSize), int64(m.pgid)
}

// usedPages returns the pages of raft.db that its buckets reach, sorted
// (meta pages and the freelist left out).
func usedPages(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	c := &boltChecker{f: f, size: fi.Size()}
	if err := c.check(); err != nil {
		t.Fatalf("check %s: %v", path, err)
	}
	var out []int64
	for p := range c.reached {
		if p >= 2 && !c.free[p] {
			out = append(out, int64(p))
		}
	}
	slices.Sort(out)
	return out
}

// damage helpers: each changes one file of a data directory.

func truncateFile(t *testing.T, path string, size func(int64) int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size(fi.Size())); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func garbage(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// snapFile returns the path of file (meta.json or state.bin) of the
// directory's newest snapshot.
func snapFile(t *testing.T, dir, file string) string {
	t.Helper()
	snaps, err := checkSnapshots(dir)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("the test directory's snapshots: got %d, %v; want one", len(snaps), err)
	}
	return filepath.Join(dir, "snapshots", snaps[0].ID, file)
}

// TestDamagedDataDir damages a stopped node's data directory in the ways a
// disk does and checks that HasState and OpenRaft refuse it with a
// DataError naming the file (never a panic), or open it when bbolt can
// still read it whole.
func TestDamagedDataDir(t *testing.T) {
	plain := makeDataDir(t, 40, false)
	snapped := makeDataDir(t, 40, true)
	db := func(dir string) string { return filepath.Join(dir, raftDB) }
	tests := []struct {
		name   string
		from   dataDir
		damage func(t *testing.T, dir string)
		// file is the file the error must name (relative to the data
		// directory; a * stands for the snapshot's ID); "" means the
		// directory opens with the ledger intact.
		file   string
		detail string // in the error's Detail
		// hasState: HasState, which leaves the snapshots' contents to
		// OpenRaft, answers without error.
		hasState bool
	}{
		{name: "healthy", from: plain},
		{name: "healthy with a snapshot", from: snapped},
		{name: "raft.db truncated to half its used pages", from: plain, file: "raft.db", detail: "truncated",
			damage: func(t *testing.T, dir string) {
				ps, pages := boltPages(t, db(dir))
				truncateFile(t, db(dir), func(int64) int64 { return pages / 2 * ps })
			}},
		{name: "raft.db truncated to its last used page", from: plain, file: "raft.db", detail: "truncated",
			damage: func(t *testing.T, dir string) {
				ps, pages := boltPages(t, db(dir))
				truncateFile(t, db(dir), func(int64) int64 { return (pages - 1) * ps })
			}},
		{name: "raft.db truncated inside the first page", from: plain, file: "raft.db", detail: "truncated",
			damage: func(t *testing.T, dir string) { truncateFile(t, db(dir), func(int64) int64 { return 50 }) }},
		{name: "raft.db empty", from: plain, file: "raft.db", detail: "empty",
			damage: func(t *testing.T, dir string) { truncateFile(t, db(dir), func(int64) int64 { return 0 }) }},
		{name: "both meta pages zeroed", from: plain, file: "raft.db", detail: "neither meta page is valid",
			damage: func(t *testing.T, dir string) {
				ps, _ := boltPages(t, db(dir))
				overwrite(t, db(dir), 0, make([]byte, 2*ps))
			}},
		{name: "one meta page zeroed (bbolt falls back to the other)", from: plain,
			damage: func(t *testing.T, dir string) {
				ps, _ := boltPages(t, db(dir))
				overwrite(t, db(dir), ps, make([]byte, ps))
			}},
		{name: "random garbage over the middle third of the used pages", from: plain, file: "raft.db",
			damage: func(t *testing.T, dir string) {
				ps, pages := boltPages(t, db(dir))
				used := pages * ps
				overwrite(t, db(dir), used/3, garbage(1, used/3))
			}},
		{name: "random garbage over one page in use", from: snapped, file: "raft.db",
			damage: func(t *testing.T, dir string) {
				ps, _ := boltPages(t, db(dir))
				used := usedPages(t, db(dir))
				overwrite(t, db(dir), used[len(used)/2]*ps, garbage(2, ps))
			}},
		{name: "garbage inside a log entry's command", from: plain, file: "raft.db", detail: "does not decode",
			damage: func(t *testing.T, dir string) {
				b, err := os.ReadFile(db(dir))
				if err != nil {
					t.Fatal(err)
				}
				// Every copy: the pages bbolt freed may hold older ones.
				marker, found := []byte(`"marker-task-0017"`), false
				for at := 0; ; {
					i := bytes.Index(b[at:], marker)
					if i < 0 {
						break
					}
					overwrite(t, db(dir), int64(at+i), []byte("\x00\x01\x02garbage"))
					at, found = at+i+len(marker), true
				}
				if !found {
					t.Fatal("marker-task-0017 is not in raft.db")
				}
			}},
		{name: "raft.db removed, snapshots kept", from: snapped, file: "raft.db", detail: "missing",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(db(dir)); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "the snapshot removed, its log compacted", from: snapped, file: "raft.db", detail: "log entries up to",
			damage: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "garbage in the snapshot's state.bin", from: snapped, file: "snapshots/*/state.bin", detail: "CRC", hasState: true,
			damage: func(t *testing.T, dir string) {
				p := snapFile(t, dir, "state.bin")
				fi, _ := os.Stat(p)
				overwrite(t, p, fi.Size()/2, garbage(3, 64))
			}},
		{name: "the snapshot's state.bin truncated", from: snapped, file: "snapshots/*/state.bin", detail: "CRC", hasState: true,
			damage: func(t *testing.T, dir string) {
				truncateFile(t, snapFile(t, dir, "state.bin"), func(n int64) int64 { return n / 3 })
			}},
		{name: "the snapshot's state.bin replaced, CRC and all, by something that is not a ledger", from: snapped,
			file: "snapshots/*/state.bin", detail: "does not decode", hasState: true,
			damage: func(t *testing.T, dir string) {
				body := []byte("{\"format\":\"ourci-ledger\",\"version\":1,\"index\":3}\n{\"job\":")
				p := snapFile(t, dir, "state.bin")
				if err := os.WriteFile(p, body, 0o600); err != nil {
					t.Fatal(err)
				}
				mp := snapFile(t, dir, "meta.json")
				var m map[string]any
				b, _ := os.ReadFile(mp)
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				sum := crc64.New(crc64.MakeTable(crc64.ECMA))
				sum.Write(body)
				m["CRC"], m["Size"] = sum.Sum(nil), len(body)
				b, _ = json.Marshal(m)
				if err := os.WriteFile(mp, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "garbage in the snapshot's meta.json", from: snapped, file: "snapshots/*/meta.json", detail: "metadata",
			damage: func(t *testing.T, dir string) { overwrite(t, snapFile(t, dir, "meta.json"), 0, []byte("\x00garbage")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, tt.from.dir)
			want := tt.file
			if strings.Contains(want, "*") {
				snaps, err := checkSnapshots(dir)
				if err != nil || len(snaps) == 0 {
					t.Fatalf("snapshots before the damage: got %d, %v", len(snaps), err)
				}
				want = strings.Replace(want, "*", snaps[0].ID, 1)
			}
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			checkDataErr := func(what string, err error) {
				t.Helper()
				var de *DataError
				if !errors.As(err, &de) || !errors.Is(err, ErrDamaged) {
					t.Fatalf("%s: got error %v, want a DataError matching ErrDamaged", what, err)
				}
				t.Logf("%s: %v", what, err)
				if got := filepath.Join(dir, want); de.File != got || de.Dir != dir {
					t.Errorf("%s: got file %s in %s, want %s", what, de.File, de.Dir, got)
				}
				if !strings.Contains(de.Detail, tt.detail) || de.Detail == "" {
					t.Errorf("%s: got detail %q, want it to say %q", what, de.Detail, tt.detail)
				}
				if msg := err.Error(); !strings.Contains(msg, de.File) || !strings.HasPrefix(msg, "raftfsm: ") {
					t.Errorf("%s: got message %q, want it to start with raftfsm: and name %s", what, msg, de.File)
				}
				if errors.Is(err, ErrInUse) {
					t.Errorf("%s: got an error matching ErrInUse too", what)
				}
			}
			has, err := HasState(dir)
			switch {
			case tt.file == "" || tt.hasState:
				if err != nil || !has {
					t.Fatalf("HasState: got (%v, %v), want (true, nil)", has, err)
				}
			default:
				checkDataErr("HasState", err)
			}
			r, fsm, err := openDir(t, dir)
			if tt.file != "" {
				if err == nil {
					t.Fatalf("OpenRaft: got no error, want one naming %s", want)
				}
				checkDataErr("OpenRaft", err)
				return
			}
			if err != nil {
				t.Fatalf("OpenRaft: got error %v, want nil", err)
			}
			// The lone voter elects itself and replays its log (all of it,
			// unless bbolt fell back to the transaction before the last).
			wantIdx := tt.from.idx
			if tt.damage != nil {
				wantIdx = 0
			}
			wait.For(t, 30*time.Second, fmt.Sprintf("the reopened node to lead at index %d", wantIdx), func() (bool, string) {
				return r.State() == raft.Leader && fsm.Index() >= wantIdx, fmt.Sprintf("state %v index %d", r.State(), fsm.Index())
			})
			if h, _ := fsmHash(fsm); h != tt.from.hash && tt.damage == nil {
				t.Errorf("reopened ledger: got hash %x, want %x", h[:6], tt.from.hash[:6])
			}
		})
	}
}

// TestDataDirInUse: a second open of a data directory a node holds fails
// within about a second, naming the directory, instead of waiting on
// bbolt's lock for good.
func TestDataDirInUse(t *testing.T) {
	d := makeDataDir(t, 3, false)
	if _, _, err := openDir(t, d.dir); err != nil {
		t.Fatalf("first OpenRaft: got error %v, want nil", err)
	}
	for _, tt := range []struct {
		name string
		open func() error
	}{
		{"HasState", func() error { _, err := HasState(d.dir); return err }},
		{"OpenRaft", func() error { _, _, err := openDir(t, d.dir); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.open()
			took := time.Since(start)
			var de *DataError
			if !errors.As(err, &de) || !errors.Is(err, ErrInUse) || errors.Is(err, ErrDamaged) {
				t.Fatalf("got error %v, want a DataError matching ErrInUse only", err)
			}
			if de.Dir != d.dir || de.File != filepath.Join(d.dir, raftDB) || !strings.Contains(err.Error(), d.dir) {
				t.Errorf("got %q (dir %s, file %s), want it to name %s and its raft.db", err, de.Dir, de.File, d.dir)
			}
			if took > lockWait+2*time.Second {
				t.Errorf("took %v, want about %v", took, lockWait)
			}
		})
	}
}
