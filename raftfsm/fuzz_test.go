package raftfsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
)

// fuzzState is a small ledger that fuzzed commands can hit: job-1 is open
// with a running root, a queued child and a passed child (key k1 names the
// root); job-2 is closed. Blobs 1 (named "logs" in job-2), 2 (named "bin"
// in job-1) and 3 (no job) exist.
func fuzzState() *State {
	s := NewState()
	cmds := []Command{
		{Type: CmdSpawn, Spawn: &Spawn{NewJob: &NewJob{}, Job: "job-1", Task: "root", Topic: "build", Key: "k1", Assign: "n1", At: t0}},
		{Type: CmdTaskStarted, TaskStarted: &TaskStarted{Task: "root", Attempt: 1, Node: "n1", At: t0}},
		{Type: CmdSpawn, Spawn: &Spawn{Job: "job-1", Task: "c1", Parent: "root", Topic: "test", At: t0}},
		{Type: CmdSpawn, Spawn: &Spawn{Job: "job-1", Task: "c2", Parent: "root", Topic: "test", Assign: "n2", At: t0}},
		{Type: CmdTaskFinished, TaskFinished: &TaskFinished{Task: "c2", Attempt: 1, Node: "n2", State: TaskPassed, ExitCode: intp(0), At: t0}},
		{Type: CmdSpawn, Spawn: &Spawn{NewJob: &NewJob{}, Job: "job-2", Task: "r2", Topic: "build", At: t0}},
		{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: blobHash(1), Size: 10, Node: "n1", Job: "job-2", Name: "logs", At: t0}},
		{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: blobHash(2), Size: 20, Node: "n2", Job: "job-1", Name: "bin", At: t0}},
		{Type: CmdBlobAdded, BlobAdded: &BlobAdded{Hash: blobHash(3), Size: 30, Node: "n2", At: t0}},
		{Type: CmdCloseJob, CloseJob: &CloseJob{Job: "job-2", Reason: ReasonCancelled, At: t0}},
	}
	for i, c := range cmds {
		if r := s.Apply(uint64(i+1), c); resultErr(r) != nil {
			panic(fmt.Sprintf("fuzzState: entry %d: %v", i+1, resultErr(r)))
		}
	}
	return s
}

func fuzzDecodeSeeds(t testing.TB) [][]byte {
	seeds := tableSeeds(t)
	for _, c := range everyCommand() {
		seeds = append(seeds, mustEncode(t, c.cmd))
	}
	for _, c := range []Command{
		spawnChild("job-1", "c3", "root"),
		spawnChild("job-1", "c3", "c1"),
		batch(spawnChild("job-1", "c3", "root"), assign(Assignment{Task: "c3", Attempt: 1, Node: "n3"}), started("c3", 1, "n3")),
		assign(Assignment{Task: "c1", Attempt: 1, Node: "n1"}),
		finished("root", 1, "n1", TaskFailed, intp(1)),
		requeue("root", 1, 1),
		requeue("root", 1, 0),
		infraFailed("root", 1, "n1", "no space left on device", 2),
		{Type: CmdRequeue, Requeue: &Requeue{Task: "root", Attempt: 1, Reason: "unhealthy", Infra: true, MaxInfra: 1}},
		closeJob("job-1", ReasonTimedOut),
		closeJob("job-2", ReasonTimedOut),
		spawnRoot("job-3", "r3"),
		blobAdded(blobHash(2), 20, "n3", "job-1", "other"),
		blobAdded(blobHash(5), 50, "n3", "job-1", "logs"),
		blobAdded(blobHash(1), 11, "n3", "", ""),
		blobDropped(blobHash(3), "n2"),
		expire([]string{"job-2", "job-1"}, []string{blobHash(1), blobHash(3)}),
	} {
		seeds = append(seeds, mustEncode(t, c))
	}
	seeds = append(seeds,
		nil,
		[]byte{byte(CmdBatch)},
		[]byte{byte(CmdBatch), 0x80},
		[]byte{byte(CmdBatch), 1, byte(CmdBatch)},
		[]byte("\x02null"),
		[]byte("\x05{\"task\":\"root\",\"attempt\":1,\"node\":\"n1\",\"state\":\"passed\"} x"),
		[]byte("\x06{\"job\":\"job-1\",\"reason\":\"cancelled\",\"extra\":true}"),
		[]byte("\x09{}"),
	)
	return seeds
}

// applyNoPanic applies c to s, turning a panic into an error.
func applyNoPanic(s *State, idx uint64, c Command) (r Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Apply panicked: %v", p)
		}
	}()
	return s.Apply(idx, c), nil
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzDecodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("Decode(%q): got error %v, want one matching ErrDecode", data, err)
			}
			return
		}
		b1, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)): got error %v, want nil", data, err)
		}
		c2, err := Decode(b1)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = Decode(%q): got error %v, want nil", data, b1, err)
		}
		b2, err := Encode(c2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("re-encode of %q: got %q (err %v), want %q", data, b2, err, b1)
		}

		s := fuzzState()
		before := s.Hash()
		r, err := applyNoPanic(s, 100, c)
		if err != nil {
			t.Fatalf("Apply(Decode(%q)): %v", data, err)
		}
		if err := invariantErr(s); err != nil {
			t.Fatalf("Apply(Decode(%q)) broke the ledger: %v", data, err)
		}
		// A refused command (other than assign, which applies item by
		// item) leaves the state unchanged.
		if r.Err != nil && c.Type != CmdAssign && c.Type != CmdBatch && s.Hash() != before {
			t.Fatalf("Apply(Decode(%q)): refused with %v but the state changed", data, r.Err)
		}
		if c.Type == CmdBatch && len(r.Batch) != len(c.Batch) {
			t.Fatalf("Apply(batch of %d): got %d results, want %d", len(c.Batch), len(r.Batch), len(c.Batch))
		}

		// Determinism: the re-decoded command on another fresh ledger
		// gives the same result and the same state; a batch is the same
		// as its parts applied one by one at its index.
		s2 := fuzzState()
		r2, err := applyNoPanic(s2, 100, c2)
		if err != nil {
			t.Fatalf("Apply(re-decoded %q): %v", b1, err)
		}
		if s2.Hash() != s.Hash() || fmt.Sprint(r2) != fmt.Sprint(r) {
			t.Fatalf("Apply of %q on two fresh ledgers differs: results %v vs %v", data, r, r2)
		}
		if c.Type == CmdBatch {
			s3 := fuzzState()
			var parts []Result
			for _, p := range c.Batch {
				pr, err := applyNoPanic(s3, 100, p)
				if err != nil {
					t.Fatalf("Apply(part of %q): %v", data, err)
				}
				parts = append(parts, pr)
			}
			if s3.Hash() != s.Hash() || fmt.Sprint(parts) != fmt.Sprint(r.Batch) {
				t.Fatalf("batch %q differs from its parts applied one by one", data)
			}
		}
		// A snapshot of the result restores to the same ledger.
		var buf bytes.Buffer
		if err := WriteSnapshot(&buf, s, 100); err != nil {
			t.Fatalf("WriteSnapshot after Apply(Decode(%q)): %v", data, err)
		}
		rs, _, err := ReadSnapshot(&buf)
		if err != nil {
			t.Fatalf("ReadSnapshot after Apply(Decode(%q)): %v", data, err)
		}
		if rs.Hash() != s.Hash() {
			t.Fatalf("snapshot round trip after Apply(Decode(%q)): hash differs", data)
		}
	})
}

func FuzzReadSnapshot(f *testing.F) {
	// Small seeds keep minimization fast: the fuzzer minimizes every new
	// input, and time per input grows with its length.
	if golden, err := os.ReadFile(goldenV1); err == nil {
		f.Add(golden)
	}
	f.Add(snapshotBytes(f, fuzzState(), 7))
	f.Add(snapshotBytes(f, NewState(), 0))
	f.Add([]byte(`{"format":"ourci-ledger","version":1,"index":3}` + "\n" + `{"key":["k","t"]}` + "\n"))
	f.Add([]byte(`{"format":"ourci-ledger","version":2,"index":3}`))
	f.Add([]byte(`{"format":"ourci-ledger","version":1,"index":3}` + "\n{}\n"))
	f.Add([]byte("not a snapshot"))

	f.Fuzz(func(t *testing.T, data []byte) {
		s, idx, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrSnapshot) || s != nil || idx != 0 {
				t.Fatalf("ReadSnapshot(%q): got (%v, %d, %v), want (nil, 0, ErrSnapshot)", data, s != nil, idx, err)
			}
			return
		}
		// Whatever was accepted can be read and written again.
		_ = s.Queued()
		_ = s.OpenJobs()
		_ = s.RecentJobs(10)
		for _, n := range s.ActiveNodes() {
			_ = s.Active(n)
		}
		for _, id := range slices.Sorted(func(yield func(string) bool) {
			for id := range s.Jobs {
				if !yield(id) {
					return
				}
			}
		}) {
			_ = s.JobTasks(id)
		}
		var out bytes.Buffer
		if err := WriteSnapshot(&out, s, idx); err != nil {
			t.Fatalf("WriteSnapshot of a ledger read from %q: got error %v, want nil", data, err)
		}
		s2, idx2, err := ReadSnapshot(bytes.NewReader(out.Bytes()))
		if err != nil || idx2 != idx || s2.Hash() != s.Hash() {
			t.Fatalf("snapshot of a ledger read from %q does not read back the same: err %v index %d/%d", data, err, idx2, idx)
		}
	})
}
