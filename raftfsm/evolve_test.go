package raftfsm

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// An entry written by a newer binary, with fields this one does not know,
// applies as if they were absent: an older binary never panics on it, and
// every replica of this binary reaches the same state.
func TestDecodeIgnoresUnknownFields(t *testing.T) {
	newer := []byte(`{"job":"job-1","task":"root","topic":"build","args":["make"],"new_job":{"deadline":"2025-03-14T16:09:26Z","weight":7,"merge_group":{"head":"abc"}},"weight":9,"at":"2025-03-14T15:09:26Z"}`)
	c, err := Decode(append([]byte{byte(CmdSpawn)}, newer...))
	if err != nil {
		t.Fatalf("Decode of a spawn with unknown fields: got %v, want it decoded", err)
	}
	l := newLedger(t)
	l.idx++
	if r := l.s.Apply(l.idx, c); r.Err != nil || r.Task != "root" {
		t.Fatalf("Apply: got %+v, want the root spawned", r)
	}
	want := newLedger(t)
	want.ok(Command{Type: CmdSpawn, Spawn: &Spawn{NewJob: &NewJob{Deadline: at(3600)}, Job: "job-1", Task: "root", Topic: "build", Args: []string{"make"}, At: at(0)}})
	if l.s.Hash() != want.s.Hash() {
		t.Errorf("a spawn with unknown fields: state differs from the same spawn without them")
	}
}

// A command type this binary does not know, marked ignorable by its
// writer, decodes, re-encodes byte for byte, and applies as a refusal that
// changes nothing, also inside a batch; one not marked ignorable fails to
// decode (the leader never proposes it to a replica that does not know it).
func TestUnknownIgnorableCommand(t *testing.T) {
	entry := append([]byte{0x70 | ignorableBit}, `{"job":"job-1","annotations":[{"file":"a.c","line":3}]}`...)
	c, err := Decode(entry)
	if err != nil {
		t.Fatalf("Decode(an unknown ignorable command): got %v, want it decoded", err)
	}
	b, err := Encode(c)
	if err != nil || !bytes.Equal(b, entry) {
		t.Errorf("re-encode: got %q (%v), want the entry unchanged", b, err)
	}
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	before := l.s.Hash()
	l.idx++
	r := l.s.Apply(l.idx, c)
	if !errors.Is(r.Err, ErrIgnored) || l.s.Hash() != before {
		t.Errorf("Apply: got %v, state changed %v; want ErrIgnored and no change", r.Err, l.s.Hash() != before)
	}
	bat, err := Encode(batch(spawnChild("job-1", "c1", "root")))
	if err != nil {
		t.Fatal(err)
	}
	bat = append(append(bat, byte(len(entry))), entry...)
	bc, err := Decode(bat)
	if err != nil {
		t.Fatalf("Decode(a batch with an ignorable part): %v", err)
	}
	l.idx++
	rs := l.s.Apply(l.idx, bc)
	if len(rs.Batch) != 2 || rs.Batch[0].Err != nil || !errors.Is(rs.Batch[1].Err, ErrIgnored) {
		t.Errorf("batch results: got %+v, want the spawn applied and the unknown part ignored", rs.Batch)
	}
	if _, err := Decode(append([]byte{0x70}, `{}`...)); !errors.Is(err, ErrDecode) {
		t.Errorf("an unknown command not marked ignorable: got %v, want ErrDecode", err)
	}
}

// Registering a command is all it takes: encoding, decoding, its name, its
// schema, applying it, the frozen-values check and the fuzz seeds come
// from the table.
func TestAddingACommandIsOneRow(t *testing.T) {
	const typ CommandType = 100
	type note struct {
		Job  string `json:"job"`
		Text string `json:"text"`
	}
	var applied []string
	// A test-only command, kept in Command's Reported field's place would
	// not do: its payload lives in a field of its own; Raw stands in.
	sp := spec{typ: typ, name: "note", schema: LedgerSchema + 1, ignorable: true,
		payload: func(c *Command) any { return c.Raw },
		decode: func(c *Command, p []byte) error {
			c.Raw = nil
			var n note
			err := unmarshal(p, &n)
			applied = append(applied, n.Text)
			return err
		},
		apply: func(s *State, _ uint64, c Command) Result { return Result{} },
	}
	register(&sp)
	t.Cleanup(func() { delete(registry, typ) })
	if typ.String() != "note" || typ.Schema() != LedgerSchema+1 {
		t.Errorf("name and schema: got %q %d", typ.String(), typ.Schema())
	}
	c := Command{Type: typ, Batch: []Command{}}
	if need := (Command{Type: CmdBatch, Batch: []Command{{Type: CmdSpawn}, c}}).NeedsSchema(); need != LedgerSchema+1 {
		t.Errorf("a batch holding it needs schema %d, want %d", need, LedgerSchema+1)
	}
	if _, err := Decode(append([]byte{byte(typ) | ignorableBit}, `{"job":"j","text":"hello"}`...)); err != nil || !slices.Equal(applied, []string{"hello"}) {
		t.Errorf("decode through the table: got %v, decoded %v", err, applied)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("registering a type twice: got no panic, want one")
			}
		}()
		register(&sp)
	}()
	found := false
	for _, v := range frozenValues() {
		found = found || v.typ == typ
	}
	if !found {
		t.Errorf("frozenValues does not read the table")
	}
	seeded := false
	for _, b := range tableSeeds(t) {
		seeded = seeded || b[0] == byte(typ)|ignorableBit
	}
	if !seeded {
		t.Errorf("the fuzz seeds do not come from the table")
	}
}
