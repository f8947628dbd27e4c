package raftfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

// everyCommand returns one fully populated command of every type, and a
// batch holding them all.
func everyCommand() []struct {
	name string
	cmd  Command
} {
	spawn := Command{Type: CmdSpawn, Spawn: &Spawn{
		NewJob: &NewJob{
			Source:   Source{Repo: "ourci/ourci", SHA: "0123abcd", Branch: "feature/x", PR: 42},
			Trigger:  "pull_request by alice",
			Deadline: at(7200),
		},
		Job: "job-1", Task: "root", Topic: "build", Image: "golang:1.26",
		Args:    []string{"sh", "-c", "make test && echo \"ok\" <done>"},
		Env:     []string{"CI=true", "UNICODE=héllo ✓"},
		Timeout: 90 * time.Second, Assign: "node-7", Key: "push:0123abcd", At: at(1),
	}}
	child := Command{Type: CmdSpawn, Spawn: &Spawn{
		Job: "job-1", Task: "child", Parent: "root", Topic: "test", Args: []string{}, At: at(2),
	}}
	asg := Command{Type: CmdAssign, Assign: &Assign{Items: []Assignment{
		{Task: "a", Attempt: 1, Node: "n1"}, {Task: "b", Attempt: 3, Node: "n2"},
	}, At: at(3)}}
	st := Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: "a", Attempt: 1, Node: "n1", At: at(4)}}
	fin := Command{Type: CmdTaskFinished, TaskFinished: &TaskFinished{
		Task: "a", Attempt: 1, Node: "n1", State: TaskFailed, ExitCode: intp(137), Error: "killed", At: at(5),
	}}
	finNoCode := Command{Type: CmdTaskFinished, TaskFinished: &TaskFinished{
		Task: "a", Attempt: 2, Node: "n1", State: TaskTimedOut, At: at(5),
	}}
	cl := Command{Type: CmdCloseJob, CloseJob: &CloseJob{Job: "job-1", Reason: ReasonTimedOut, At: at(6)}}
	rq := Command{Type: CmdRequeue, Requeue: &Requeue{Task: "a", Attempt: 1, Reason: "node n1 left", MaxAttempts: 3, At: at(7)}}
	ba := Command{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: blobHash(1), Size: 1 << 40, Node: "n1", Job: "job-1", Name: "dist/app.tar.gz", At: at(8)}}
	baBare := Command{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: blobHash(2), Node: "n2", At: at(8)}}
	bd := Command{Type: CmdBlobDropped, BlobDropped: &BlobDropped{Hash: blobHash(1), Node: "n1"}}
	ex := Command{Type: CmdExpire, Expire: &Expire{Jobs: []string{"job-1", "job-2"}, Blobs: []string{blobHash(1)}, At: at(9)}}
	out := []struct {
		name string
		cmd  Command
	}{
		{"spawn new job", spawn},
		{"spawn child", child},
		{"assign", asg},
		{"assign empty", Command{Type: CmdAssign, Assign: &Assign{}}},
		{"task started", st},
		{"task finished", fin},
		{"task finished no exit code", finNoCode},
		{"close job", cl},
		{"requeue", rq},
		{"blob added", ba},
		{"blob added, no job", baBare},
		{"blob dropped", bd},
		{"expire", ex},
		{"expire nothing", Command{Type: CmdExpire, Expire: &Expire{At: at(9)}}},
		{"zero times", Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: "a", Attempt: 1}}},
	}
	parts := make([]Command, 0, len(out))
	for _, c := range out {
		parts = append(parts, c.cmd)
	}
	out = append(out,
		struct {
			name string
			cmd  Command
		}{"batch", Command{Type: CmdBatch, Batch: parts}},
		struct {
			name string
			cmd  Command
		}{"batch of one", Command{Type: CmdBatch, Batch: []Command{cl}}},
		struct {
			name string
			cmd  Command
		}{"empty batch", Command{Type: CmdBatch}},
	)
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tt := range everyCommand() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.cmd)
			if err != nil {
				t.Fatalf("Encode: got error %v, want nil", err)
			}
			if CommandType(b[0]) != tt.cmd.Type {
				t.Errorf("type byte: got %d, want %d", b[0], tt.cmd.Type)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: got error %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tt.cmd) {
				t.Errorf("Decode(Encode(c)):\ngot  %#v\nwant %#v", got, tt.cmd)
			}
			b2, err := Encode(got)
			if err != nil || !bytes.Equal(b2, b) {
				t.Errorf("re-encode: got %q (err %v), want %q", b2, err, b)
			}
		})
	}
}

func TestEncodeWireForm(t *testing.T) {
	// The wire form is part of the log format: pin a few bytes exactly.
	cl := Command{Type: CmdCloseJob, CloseJob: &CloseJob{Job: "j", Reason: ReasonCancelled, At: at(0)}}
	want := "\x06" + `{"job":"j","reason":"cancelled","at":"2025-03-14T15:09:26Z"}`
	if got := string(mustEncode(t, cl)); got != want {
		t.Errorf("Encode(close_job): got %q, want %q", got, want)
	}
	st := Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: "t", Attempt: 2, Node: "n", At: at(0)}}
	part := `{"task":"t","attempt":2,"node":"n","at":"2025-03-14T15:09:26Z"}`
	want = "\x01" + string(rune(len(part)+1)) + "\x04" + part
	if got := string(mustEncode(t, batch(st))); got != want {
		t.Errorf("Encode(batch): got %q, want %q", got, want)
	}
	if got := mustEncode(t, batch()); !bytes.Equal(got, []byte{1}) {
		t.Errorf("Encode(empty batch): got %v, want [1]", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := mustEncode(t, Command{Type: CmdCloseJob, CloseJob: &CloseJob{Job: "j", Reason: ReasonCancelled}})
	withType := func(typ CommandType, payload string) []byte { return append([]byte{byte(typ)}, payload...) }
	batchOf := func(parts ...[]byte) []byte {
		b := []byte{byte(CmdBatch)}
		for _, p := range parts {
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"type zero", withType(0, `{}`)},
		{"unknown type 99", withType(99, `{}`)},
		{"unknown type 127", withType(127, `{}`)},
		{"a known type marked ignorable", withType(CmdSpawn|ignorableBit, `{}`)},
		{"a batch marked ignorable", withType(CmdBatch|ignorableBit, ``)},
		{"type only", []byte{byte(CmdSpawn)}},
		{"not json", withType(CmdSpawn, "hello")},
		{"trailing garbage", append(slicesClone(valid), "garbage"...)},
		{"trailing second value", append(slicesClone(valid), ` {}`...)},
		{"truncated json", valid[:len(valid)-3]},
		{"wrong json type", withType(CmdAssign, `{"items":"n1"}`)},
		{"array payload", withType(CmdRequeue, `[]`)},
		{"string payload", withType(CmdTaskStarted, `"x"`)},
		{"bad time", withType(CmdTaskStarted, `{"task":"t","attempt":1,"node":"n","at":"yesterday"}`)},
		{"fraction in int", withType(CmdTaskStarted, `{"task":"t","attempt":1.5}`)},
		{"nested batch", batchOf(batchOf(valid))},
		{"nested empty batch", batchOf([]byte{byte(CmdBatch)})},
		{"empty part", batchOf([]byte{})},
		{"bad part", batchOf(valid, withType(99, `{}`))},
		{"truncated uvarint", []byte{byte(CmdBatch), 0x80}},
		{"uvarint overflow", append([]byte{byte(CmdBatch)}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"length past end", append(binary.AppendUvarint([]byte{byte(CmdBatch)}, uint64(len(valid)+1)), valid...)},
		{"huge length", append(binary.AppendUvarint([]byte{byte(CmdBatch)}, 1<<62), valid...)},
		{"max length", append(binary.AppendUvarint([]byte{byte(CmdBatch)}, ^uint64(0)), valid...)},
		{"trailing bytes after last part", append(batchOf(valid), 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("Decode(%q): got error %v, want %v", tt.in, err, ErrDecode)
			}
			if !reflect.DeepEqual(got, Command{}) {
				t.Errorf("Decode(%q): got %+v, want the zero Command", tt.in, got)
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"zero command", Command{}},
		{"unknown type", Command{Type: 42, Spawn: &Spawn{}}},
		{"spawn without payload", Command{Type: CmdSpawn}},
		{"payload of another type", Command{Type: CmdAssign, Spawn: &Spawn{}}},
		{"blob added without payload", Command{Type: CmdBlobAdded}},
		{"expire without payload", Command{Type: CmdExpire, BlobDropped: &BlobDropped{}}},
		{"batch with a bad part", Command{Type: CmdBatch, Batch: []Command{{Type: CmdRequeue}}}},
		{"time out of range", Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := Encode(tt.cmd); err == nil {
				t.Errorf("Encode: got %q and no error, want an error", b)
			}
		})
	}
}

// TestEncodeOutputDecodes: whatever Encode accepts, Decode must accept. An
// entry the leader encodes but replicas cannot decode panics every replica
// (FSM.Apply) once committed.
func TestEncodeOutputDecodes(t *testing.T) {
	st := Command{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: "t", Attempt: 1, Node: "n"}}
	tests := []struct {
		name string
		cmd  Command
	}{
		{"flat batch", batch(st, st)},
		{"nested batch", batch(st, batch(st))},
		{"nested empty batch", batch(batch())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.cmd)
			if err != nil {
				return // refusing to encode is fine
			}
			if _, err := Decode(b); err != nil {
				t.Errorf("Decode(Encode(c)): got error %v, want nil (or Encode should have refused c)", err)
			}
		})
	}
}

func TestCommandTypeString(t *testing.T) {
	tests := []struct {
		typ  CommandType
		want string
	}{
		{CmdBatch, "batch"},
		{CmdSpawn, "spawn"},
		{CmdAssign, "assign"},
		{CmdTaskStarted, "task_started"},
		{CmdTaskFinished, "task_finished"},
		{CmdCloseJob, "close_job"},
		{CmdRequeue, "requeue"},
		{CmdBlobAdded, "blob_added"},
		{CmdBlobDropped, "blob_dropped"},
		{CmdExpire, "expire"},
		{0, "command(0)"},
		{200, "command(200)"},
		{255, "command(255)"},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("CommandType(%d).String(): got %q, want %q", uint8(tt.typ), got, tt.want)
		}
	}
}

// frozenValues lists every registered command type, from the table.
func frozenValues() []struct {
	typ  CommandType
	name string
} {
	var out []struct {
		typ  CommandType
		name string
	}
	for typ, sp := range registry {
		out = append(out, struct {
			typ  CommandType
			name string
		}{typ, sp.name})
	}
	slices.SortFunc(out, func(a, b struct {
		typ  CommandType
		name string
	}) int {
		return int(a.typ) - int(b.typ)
	})
	return out
}

// TestCommandTypeValuesFrozen: type bytes are in old logs forever. Every
// value released keeps its name; the table may only grow.
func TestCommandTypeValuesFrozen(t *testing.T) {
	released := map[CommandType]string{
		CmdBatch: "batch", CmdSpawn: "spawn", CmdAssign: "assign", CmdTaskStarted: "task_started",
		CmdTaskFinished: "task_finished", CmdCloseJob: "close_job", CmdRequeue: "requeue",
		CmdBlobAdded: "blob_added", CmdBlobDropped: "blob_dropped", CmdExpire: "expire",
		CmdApprove: "approve", CmdReported: "reported",
	}
	wantValues := map[string]uint8{"batch": 1, "spawn": 2, "assign": 3, "task_started": 4, "task_finished": 5, "close_job": 6,
		"requeue": 7, "blob_added": 8, "blob_dropped": 9, "expire": 10, "approve": 11, "reported": 12}
	got := map[CommandType]string{}
	for _, v := range frozenValues() {
		got[v.typ] = v.name
	}
	for typ, name := range released {
		if got[typ] != name || uint8(typ) != wantValues[name] {
			t.Errorf("released command %s (%d): got %q at %d in the table", name, wantValues[name], got[typ], uint8(typ))
		}
	}
}

// tableSeeds encodes one command of every registered type (payload from
// "{}"), so the fuzz corpus covers the whole table.
func tableSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, v := range frozenValues() {
		sp := registry[v.typ]
		if sp.decode == nil {
			continue
		}
		c := Command{Type: v.typ}
		if err := sp.decode(&c, []byte(`{}`)); err != nil {
			t.Fatalf("seed for %s: %v", v.name, err)
		}
		b, err := Encode(c)
		if err != nil {
			continue // a test-only row without a payload field
		}
		out = append(out, b)
	}
	return out
}
