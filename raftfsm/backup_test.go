package raftfsm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// backupBytes returns s as a snapshot file saved at index.
func backupBytes(t testing.TB, s *State, index uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := WriteBackup(&buf, s, index, t0); err != nil {
		t.Fatalf("WriteBackup: got error %v, want nil", err)
	}
	return buf.Bytes()
}

// withBody returns a snapshot file whose header is right for body.
func withBody(t testing.TB, index uint64, body []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(body)
	h := BackupHeader{Format: backupFormat, Version: backupVersion, Index: index, Saved: t0, Compression: backupGzip,
		Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	line, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(line, '\n'), body...)
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBackupRoundTrip(t *testing.T) {
	l := richLedger(t)
	file := backupBytes(t, l.s, l.idx)
	h, s, err := ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("ReadBackup: got error %v, want nil", err)
	}
	sameLedger(t, s, l.s)
	line, body, _ := bytes.Cut(file, []byte("\n"))
	sum := sha256.Sum256(body)
	want := BackupHeader{Format: "ourci-snapshot", Version: 1, Index: l.idx, Saved: t0, Compression: "gzip",
		Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Jobs: len(l.s.Jobs), Tasks: len(l.s.Tasks), Blobs: len(l.s.Blobs)}
	if h != want {
		t.Errorf("header: got %+v, want %+v", h, want)
	}
	if !bytes.HasPrefix(line, []byte(`{"format":"ourci-snapshot","version":1,`)) {
		t.Errorf("header line: got %s, want it to begin with the format and version", line)
	}
	// The body is the ledger's own snapshot stream, compressed.
	var stream bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("body: got %v, want gzip", err)
	}
	stream.ReadFrom(zr)
	if got, want := stream.Bytes(), snapshotBytes(t, l.s, l.idx); !bytes.Equal(got, want) {
		t.Errorf("body, decompressed: got %d bytes, want the %d of WriteSnapshot", len(got), len(want))
	}
}

// TestFSMBackup: the FSM's backup holds what it had applied, and writing it
// twice gives the same bytes, Len of them.
func TestFSMBackup(t *testing.T) {
	f := NewFSM()
	for i, c := range richCommands() {
		fsmApply(t, f, uint64(i+1), c)
	}
	b, err := f.Backup(t0)
	if err != nil {
		t.Fatalf("Backup: got error %v, want nil", err)
	}
	fsmApply(t, f, 1000, spawnRoot("job-after", "task-after")) // after the copy: not in it
	var one, two bytes.Buffer
	for _, w := range []*bytes.Buffer{&one, &two} {
		n, err := b.WriteTo(w)
		if err != nil || n != b.Len() || int64(w.Len()) != n {
			t.Fatalf("WriteTo: got (%d, %v), %d bytes written; want (%d, nil)", n, err, w.Len(), b.Len())
		}
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Errorf("WriteTo twice: got different bytes, want the same")
	}
	h, s, err := ReadBackup(bytes.NewReader(one.Bytes()))
	if err != nil {
		t.Fatalf("ReadBackup: got error %v, want nil", err)
	}
	want := NewFSM()
	for i, c := range richCommands() {
		fsmApply(t, want, uint64(i+1), c)
	}
	wh, widx := fsmHash(want)
	if s.Hash() != wh || h.Index != widx || h != b.Header() {
		t.Errorf("read back: got hash %x index %d header %+v, want %x %d %+v", s.Hash(), h.Index, h, wh, widx, b.Header())
	}
	if s.Jobs["job-after"] != nil {
		t.Errorf("read back: got job-after, applied after the backup was taken; want it absent")
	}
}

func TestReadBackupRefuses(t *testing.T) {
	l := richLedger(t)
	good := backupBytes(t, l.s, l.idx)
	line, body, _ := bytes.Cut(good, []byte("\n"))
	header := func(edit func(h *BackupHeader)) []byte {
		var h BackupHeader
		if err := json.Unmarshal(line, &h); err != nil {
			t.Fatal(err)
		}
		edit(&h)
		b, _ := json.Marshal(h)
		return append(append(b, '\n'), body...)
	}
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not a snapshot file", []byte("hello, world\n"), "not JSON"},
		{"no newline at all", bytes.Repeat([]byte("x"), 5000), "no header line"},
		{"a ledger snapshot stream, not a snapshot file", snapshotBytes(t, l.s, l.idx), "format"},
		{"header only", append(bytes.Clone(line), '\n'), "truncated"},
		{"body cut short", good[:len(good)-10], "truncated"},
		{"a byte flipped in the body", flip(len(line) + 1 + len(body)/2), "damaged"},
		{"a byte flipped in the body's last bytes (the gzip trailer)", flip(len(good) - 3), "damaged"},
		{"bytes after the body", append(bytes.Clone(good), "more"...), "follow the body"},
		{"the header's hash wrong", header(func(h *BackupHeader) { h.SHA256 = strings.Repeat("0", 64) }), "damaged"},
		{"the header's size too small", header(func(h *BackupHeader) { h.Size -= 5 }), "follow the body"},
		{"a later version", header(func(h *BackupHeader) { h.Version = 2 }), "version 2"},
		{"another format", header(func(h *BackupHeader) { h.Format = "consul-snapshot" }), "format"},
		{"another compression", header(func(h *BackupHeader) { h.Compression = "zstd" }), "compression"},
		{"no hash in the header", header(func(h *BackupHeader) { h.SHA256 = "" }), "sha256"},
		{"the header's index not the ledger's", header(func(h *BackupHeader) { h.Index++ }), "index"},
		{"a body that is not gzip", withBody(t, 3, []byte("plain text")), "does not decode"},
		{"a body that is not a ledger", withBody(t, 3, gzipped(t, []byte("{\"format\":\"ourci-ledger\",\"version\":1,\"index\":3}\n{\"task\":{\"id\":\"t\",\"job\":\"nope\"}}\n"))), "unknown job"},
		{"a body with two gzip members", withBody(t, l.idx, append(bytes.Clone(body), gzipped(t, []byte("x"))...)), "follow the compressed ledger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s, err := ReadBackup(bytes.NewReader(tt.file))
			if !errors.Is(err, ErrBackup) || s != nil {
				t.Fatalf("got (state %v, %v), want no state and ErrBackup", s != nil, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to say %q", err, tt.want)
			}
			_ = h
		})
	}
}

// FuzzReadBackup: no input makes ReadBackup panic, and what it accepts
// reads back the same once written again. With body set, data is a body
// under a right header (the hash would stop nearly every input before the
// decoder otherwise).
func FuzzReadBackup(f *testing.F) {
	good := backupBytes(f, fuzzState(), 7)
	f.Add(good, false)
	f.Add(good[:len(good)/2], false)
	f.Add(backupBytes(f, NewState(), 0), false)
	_, body, _ := bytes.Cut(good, []byte("\n"))
	f.Add(body, true)
	f.Add(gzipped(f, []byte("{\"format\":\"ourci-ledger\",\"version\":1,\"index\":0}\n")), true)
	f.Add([]byte(`{"format":"ourci-snapshot","version":1,"index":0,"compression":"gzip","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`+"\n"), false)
	f.Add([]byte("not a snapshot file"), false)
	f.Fuzz(func(t *testing.T, data []byte, body bool) {
		if body {
			data = withBody(t, 0, data)
		}
		h, s, err := ReadBackup(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBackup) || s != nil {
				t.Fatalf("ReadBackup(%q): got (%v, %v), want (nil, ErrBackup)", data, s != nil, err)
			}
			return
		}
		var out bytes.Buffer
		if _, err := WriteBackup(&out, s, h.Index, h.Saved); err != nil {
			t.Fatalf("WriteBackup of a ledger read from %q: got error %v, want nil", data, err)
		}
		h2, s2, err := ReadBackup(bytes.NewReader(out.Bytes()))
		if err != nil || h2.Index != h.Index || s2.Hash() != s.Hash() {
			t.Fatalf("a ledger read from %q does not read back the same: %v, index %d/%d", data, err, h2.Index, h.Index)
		}
	})
}

// TestRestoreState: a user restore on a three-node Raft makes every
// replica's ledger the restored one; no replica's applied index goes back
// past what it had applied before, and the index RestoreState returns is
// past all of it; the group then takes new entries.
func TestRestoreState(t *testing.T) {
	c := newCluster(t)
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, c.start(fmt.Sprintf("node-%d", i), "secret", ""))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.r.Transport.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: got error %v, want nil", err)
	}
	leader := c.waitLeader(nodes...)
	for i := range 5 {
		propose(t, leader, spawnRoot(fmt.Sprintf("job-%d", i), fmt.Sprintf("task-%d", i)))
	}
	saved, err := leader.fsm.Backup(t0)
	if err != nil {
		t.Fatalf("Backup: got error %v, want nil", err)
	}
	var file bytes.Buffer
	saved.WriteTo(&file)
	var last uint64
	for i := 5; i < 10; i++ {
		_, last = propose(t, leader, spawnRoot(fmt.Sprintf("job-%d", i), fmt.Sprintf("task-%d", i)))
	}
	before := map[string]uint64{}
	for _, n := range nodes {
		waitIndex(t, n, last)
		before[n.id] = n.fsm.Index()
	}

	_, s, err := ReadBackup(&file)
	if err != nil {
		t.Fatalf("ReadBackup: got error %v, want nil", err)
	}
	idx, err := leader.r.RestoreState(s, 10*time.Second)
	if err != nil {
		t.Fatalf("RestoreState: got error %v, want nil", err)
	}
	if idx <= last {
		t.Errorf("RestoreState: got index %d, want past %d, the last entry before it", idx, last)
	}
	for _, n := range nodes {
		waitIndex(t, n, idx)
		if h, got := fsmHash(n.fsm); h != s.Hash() || got < before[n.id] {
			t.Errorf("node %s after the restore: got hash %x index %d, want %x and index at least %d", n.id, h[:6], got, s.Hash(), before[n.id])
		}
		n.fsm.Read(func(st *State, _ uint64) {
			if st.Jobs["job-4"] == nil || st.Jobs["job-5"] != nil {
				t.Errorf("node %s after the restore: got job-4 %v, job-5 %v; want job-4 (saved) and no job-5 (after)", n.id, st.Jobs["job-4"] != nil, st.Jobs["job-5"] != nil)
			}
		})
	}
	_, next := propose(t, leader, spawnRoot("job-after", "task-after"))
	for _, n := range nodes {
		waitIndex(t, n, next)
		n.fsm.Read(func(st *State, _ uint64) {
			if st.Jobs["job-after"] == nil {
				t.Errorf("node %s: got no job-after, proposed after the restore", n.id)
			}
		})
	}
}
