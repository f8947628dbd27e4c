package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// The tests of the sweep (node/logs_sweep.go): what keepLog could not seal
// when its attempt ended is sealed later, and nothing of a job past its
// log retention stays on any disk.

// marker is what a task printing markerScript prints: a line only its
// output holds (the spawn's arguments, in the ledger and the Raft log, do
// not hold it: the task works it out from its ID).
func marker(task string) string {
	h := sha256.Sum256([]byte(task))
	return hex.EncodeToString(h[:])
}

// markerScript prints the task's marker n times, numbered, then runs then.
func markerScript(n int, then string) string {
	return fmt.Sprintf(`m=$(printf %%s "$OURCI_TASK" | sha256sum | cut -d' ' -f1); i=0; while [ $i -lt %d ]; do i=$((i+1)); echo "$m line $i"; done; %s`, n, then)
}

// sealedAttempt returns the sealed log of a task's attempt as node n's
// replica has it, and the number of its blob's holders.
func sealedAttempt(n *node.Node, task string, attempt int) (raftfsm.LogRef, int, bool) {
	var ref raftfsm.LogRef
	found, holds := false, 0
	n.FSM().Read(func(s *raftfsm.State, _ uint64) {
		if tk := s.Tasks[task]; tk != nil {
			for _, l := range tk.Logs {
				if l.Attempt == attempt {
					ref, found = l, true
					if b := s.Blobs[l.Hash]; b != nil {
						holds = len(b.Holders)
					}
				}
			}
		}
	})
	return ref, holds, found
}

// waitSealedAttempt waits until node n shows the attempt sealed by the
// node named by ("": any) and held by two nodes, and returns the seal.
func waitSealedAttempt(t *testing.T, m *nodetest.Mesh, n int, task string, attempt int, by string, timeout time.Duration) raftfsm.LogRef {
	t.Helper()
	var ref raftfsm.LogRef
	m.WaitFor(timeout, fmt.Sprintf("task %s attempt %d sealed by %s and held by two nodes", task, attempt, by), func() (bool, string) {
		r, holds, ok := sealedAttempt(m.Nodes[n], task, attempt)
		ref = r
		return ok && (by == "" || r.Node == by) && holds >= 2, fmt.Sprintf("sealed %v: %+v, %d holders", ok, r, holds)
	})
	return ref
}

// readAttempt reads one attempt's whole log through node i.
func readAttempt(t *testing.T, m *nodetest.Mesh, i int, task string, attempt int, timestamps bool) (string, error) {
	t.Helper()
	rc, err := m.Client(i).LogOf(testCtx(t), task, api.LogOptions{Attempt: attempt, Timestamps: timestamps})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// TestLogSealedAfterARestart: a node that crashes before it sealed an
// attempt's log (here in the middle of the attempt, with no copy of it on
// another node) seals it when it comes back on its data directory, once
// the ledger has the attempt over: the log is recorded with this node as
// its holder, replicated, and read whole from the other nodes after the
// node is gone for good.
func TestLogSealedAfterARestart(t *testing.T) {
	conf := func(i int, c *node.Config) {
		c.LogCopies = 1 // no copy elsewhere: only node2 can seal it
		if i == 2 {
			c.Topics = topics("solo")
		}
	}
	m := startMesh(t, 3, conf)
	cfg := m.Config(2)
	conf(2, &cfg)
	flag := filepath.Join(t.TempDir(), "go-on")
	// Attempt 1 prints, then hangs until its node dies; attempt 2 (after
	// the restart) finds the flag and ends.
	r := spawn(t, m.Client(0), "solo", "sh", "-c", markerScript(500, fmt.Sprintf("[ -f %s ] || exec sleep 600", flag)))
	mark := marker(r.Task)
	raw := filepath.Join(m.Nodes[2].DataDir(), "logs", r.Task, "1.log")
	m.WaitFor(waitLong, "node2 to write attempt 1's 500 lines", func() (bool, string) {
		b, _ := os.ReadFile(raw)
		return bytes.Contains(b, []byte(mark+" line 500\n")), fmt.Sprintf("%d bytes so far", len(b))
	})
	m.Nodes[2].Kill() // a crash: nothing sealed, nothing recorded
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := sealedAttempt(m.Nodes[0], r.Task, 1); ok {
		t.Fatal("attempt 1 is sealed before its node came back: the test shows nothing")
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.Restart(2, cfg)

	ref := waitSealedAttempt(t, m, 0, r.Task, 1, "node2", 2*waitLong)
	if ref.Bytes != int64(len(want)) {
		t.Errorf("attempt 1's seal: %d bytes recorded, the raw log had %d", ref.Bytes, len(want))
	}
	m.WaitFor(waitLong, "node2's raw copy of attempt 1 to go once sealed", func() (bool, string) {
		_, err := os.Stat(raw)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
	waitSealedAttempt(t, m, 0, r.Task, 2, "node2", waitLong)
	m.WaitFor(waitLong, "node2's log directory of the task to go once it is over and sealed", func() (bool, string) {
		_, err := os.Stat(filepath.Dir(raw))
		return os.IsNotExist(err), fmt.Sprint(err)
	})

	m.Nodes[2].Kill() // for good
	for _, i := range []int{0, 1} {
		got, err := readAttempt(t, m, i, r.Task, 1, false)
		if err != nil || got != string(want) {
			t.Errorf("attempt 1 through node%d with node2 gone: got %d bytes, %v; want the %d node2 wrote", i, len(got), err, len(want))
		}
	}
}

// records is a slog.Handler that keeps every record (with the attributes
// of its logger) for the test to look through.
type records struct {
	mu    *sync.Mutex
	all   *[]map[string]string
	attrs []slog.Attr
}

func newRecords() records { return records{mu: &sync.Mutex{}, all: &[]map[string]string{}} }

func (r records) Enabled(context.Context, slog.Level) bool { return true }

func (r records) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	for _, a := range r.attrs {
		m[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.all = append(*r.all, m)
	r.mu.Unlock()
	return nil
}

func (r records) WithAttrs(as []slog.Attr) slog.Handler {
	return records{mu: r.mu, all: r.all, attrs: append(slices.Clip(r.attrs), as...)}
}

func (r records) WithGroup(string) slog.Handler { return r }

// matching returns the records whose message starts with msg and whose
// task is task.
func (r records) matching(msg, task string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, m := range *r.all {
		if strings.HasPrefix(m["msg"], msg) && m["task"] == task {
			out = append(out, m)
		}
	}
	return out
}

// TestLogSealedOnceTheDiskHasRoom: the node that ran an attempt cannot
// seal its log when it ends, its disk being full: it says so once in its
// log with the cause, the raw log stays and is read through the other
// nodes; once space is freed the sweep seals it, with its lines' arrival
// times, and it is read whole from the other nodes with the node gone.
func TestLogSealedOnceTheDiskHasRoom(t *testing.T) {
	disk := smallDisk(t, 64<<20)
	logs := newRecords()
	m := startMesh(t, 3, func(i int, c *node.Config) {
		c.LogCopies = 1 // no copy elsewhere: only node2 can seal it
		if i == 2 {
			c.Topics = topics("solo")
			c.DataDir = filepath.Join(disk, "node2")
			c.MinFreeDisk = 1 << 20
			c.Logger = slog.New(logs)
		}
	})
	flag := filepath.Join(t.TempDir(), "go-on")
	// About 2 MiB that does not compress much, then the marker, then it
	// waits for the disk to be filled before it ends.
	script := fmt.Sprintf(`head -c 1500000 /dev/urandom | base64; %s`, markerScript(3, fmt.Sprintf("while [ ! -f %s ]; do sleep 0.05; done", flag)))
	r := spawn(t, m.Client(0), "solo", "sh", "-c", script)
	mark := marker(r.Task)
	raw := filepath.Join(m.Nodes[2].DataDir(), "logs", r.Task, "1.log")
	m.WaitFor(waitLong, "node2 to write the task's output", func() (bool, string) {
		b, _ := os.ReadFile(raw)
		return bytes.Contains(b, []byte(mark+" line 3\n")), fmt.Sprintf("%d bytes so far", len(b))
	})
	filler := fill(t, disk, 256<<10) // room for the node's closing notes, not for the sealed log
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
	m.WaitFor(waitLong, "node2 to log that it could not seal the log", func() (bool, string) {
		return len(logs.matching("task log: could not seal it", r.Task)) > 0, "no such line yet"
	})
	said := logs.matching("task log: could not seal it", r.Task)[0]
	if !strings.Contains(said["err"], "no space left on device") || said["level"] != "WARN" || said["job"] != r.Job || said["attempt"] != "1" {
		t.Errorf("the line about the failed seal: got %v, want a warning naming the job, attempt 1 and the full disk", said)
	}
	if _, _, ok := sealedAttempt(m.Nodes[0], r.Task, 1); ok {
		t.Fatal("the log is sealed on a full disk: the test shows nothing")
	}
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatalf("the raw log is gone after the failed seal: %v", err)
	}
	if got := readLog(t, m.Client(0), r.Task); got != string(want) {
		t.Errorf("the unsealed log through node0: got %d bytes, want the %d node2 holds", len(got), len(want))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ref := waitSealedAttempt(t, m, 0, r.Task, 1, "node2", 3*waitLong)
	if ref.Bytes != int64(len(want)) {
		t.Errorf("the seal: %d bytes recorded, the raw log had %d", ref.Bytes, len(want))
	}
	if n := len(logs.matching("task log: could not seal it", r.Task)); n != 1 {
		t.Errorf("the failed seal was logged %d times; want once, however often it was tried on the full disk", n)
	}
	if done := logs.matching("task log sweep: sealed and recorded", r.Task); len(done) != 1 || done[0]["failed_tries"] == "0" {
		t.Errorf("the sweep's line about the seal: got %v, want one, counting the failed tries", done)
	}
	m.WaitFor(waitLong, "node2's raw copy to go once sealed", func() (bool, string) {
		_, err := os.Stat(raw)
		return os.IsNotExist(err), fmt.Sprint(err)
	})

	m.Nodes[2].Kill()
	for _, i := range []int{0, 1} {
		got, err := readAttempt(t, m, i, r.Task, 1, false)
		if err != nil || got != string(want) {
			t.Errorf("the log through node%d with node2 gone: got %d bytes, %v; want the %d node2 wrote", i, len(got), err, len(want))
		}
	}
	// Sealed from the finished log node2 kept, not from its file: the
	// lines keep their arrival times (the last note came after the wait).
	stamped, err := readAttempt(t, m, 0, r.Task, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(stamped, "\n"), "\n")
	first, _, _ := strings.Cut(lines[0], " ")
	last, _, _ := strings.Cut(lines[len(lines)-1], " ")
	if first >= last {
		t.Errorf("line times: the first line at %s, the last at %s; want the last later", first, last)
	}
}

// dataFiles walks a data directory and returns the files named name (if
// not "") and those whose contents hold any of needles.
func dataFiles(t *testing.T, dir, name string, needles ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			return err
		}
		if name != "" && d.Name() == name {
			out = append(out, p)
		}
		for _, s := range needles {
			if bytes.Contains(b, []byte(s)) {
				out = append(out, fmt.Sprintf("%s (holds %.16s...)", p, s))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// TestExpiredJobsLeaveNoLogOnAnyDisk: once a job's log retention passed,
// no node keeps anything of its logs: every copy of its sealed log is
// deleted (the ledger forgets the blob with the logs), and a raw log of it
// that a node held unsealed (it crashed during the attempt and came back
// after the retention) is removed, not sealed; the log of a newer job
// stays, read from every node.
func TestExpiredJobsLeaveNoLogOnAnyDisk(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	conf := func(i int, c *node.Config) {
		c.Clock, c.LogRetention, c.BlobRetention = clk, time.Hour, 24*time.Hour // the job stays in the ledger
		c.JobTimeout, c.TaskTimeout = 90*24*time.Hour, 90*24*time.Hour
		c.LogCopies = 1
		switch i {
		case 1:
			c.Topics = topics("t")
		case 2:
			c.Topics = topics("t", "solo")
		}
	}
	m := startMesh(t, 3, conf)
	cfg := m.Config(2)
	conf(2, &cfg)

	// Old job 1: its log sealed and replicated.
	a1 := spawn(t, m.Client(0), "t", "sh", "-c", markerScript(200, "true"))
	checkJob(t, m.WaitJob(0, a1.Job, waitLong), "closed", "passed", "")
	ref1 := waitSealedAttempt(t, m, 0, a1.Task, 1, "", waitLong)
	// Old job 2: its node (the only one serving solo) crashes during the
	// attempt, which leaves its raw log unsealed there, and the job is
	// cancelled while the node is down.
	a2 := spawn(t, m.Client(0), "solo", "sh", "-c", markerScript(200, "exec sleep 600"))
	raw2 := filepath.Join(m.Nodes[2].DataDir(), "logs", a2.Task, "1.log")
	m.WaitFor(waitLong, "node2 to write job 2's output", func() (bool, string) {
		b, _ := os.ReadFile(raw2)
		return bytes.Contains(b, []byte(marker(a2.Task)+" line 200\n")), fmt.Sprintf("%d bytes so far", len(b))
	})
	m.Nodes[2].Kill()
	if _, err := m.Client(0).Cancel(testCtx(t), a2.Job); err != nil {
		t.Fatal(err)
	}
	checkJob(t, m.WaitJob(0, a2.Job, waitLong), "closed", "error", raftfsm.ReasonCancelled)

	// Half an hour later, a newer job (node1 runs it: node2 is down).
	m.WaitFor(waitLong, "node0 to see node2 gone", func() (bool, string) {
		for _, mb := range m.Nodes[0].Status().Members {
			if mb.Name == "node2" && mb.Alive {
				return false, "node2 alive"
			}
		}
		return true, ""
	})
	clk.Advance(30 * time.Minute)
	b := spawn(t, m.Client(0), "t", "sh", "-c", markerScript(200, "true"))
	checkJob(t, m.WaitJob(0, b.Job, waitLong), "closed", "passed", "")
	refB := waitSealedAttempt(t, m, 0, b.Task, 1, "", waitLong)
	// Before the retention: the old logs are on the disks (else the checks
	// below show nothing).
	var before []string
	for _, n := range m.Nodes {
		before = append(before, dataFiles(t, n.DataDir(), ref1.Hash)...)
	}
	if len(before) < 2 {
		t.Fatalf("job 1's sealed log %s before its retention: on %v, want two disks", ref1.Hash, before)
	}
	if got := dataFiles(t, m.Nodes[2].DataDir(), "", marker(a2.Task)); len(got) == 0 {
		t.Fatal("job 2's raw log is not on node2's disk before its retention")
	}

	// Past the old jobs' retention, not the newer one's; node2 comes back.
	clk.Advance(31 * time.Minute)
	m.Restart(2, cfg)
	m.WaitFor(waitLong, "job 1's logs to expire and their blob to leave the ledger", func() (bool, string) {
		gone := false
		m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
			_, blob := s.Blobs[ref1.Hash]
			gone = s.Jobs[a1.Job].LogsExpired && !blob
		})
		return gone, "still there"
	})
	m.WaitFor(2*waitLong, "nothing of the old jobs' logs on any disk", func() (bool, string) {
		var left []string
		for _, n := range m.Nodes {
			left = append(left, dataFiles(t, n.DataDir(), ref1.Hash, marker(a1.Task), marker(a2.Task))...)
		}
		return len(left) == 0, fmt.Sprintf("left: %v", left)
	})
	// The newer job's log stays, read through every node.
	for i := range m.Nodes {
		if got, err := readAttempt(t, m, i, b.Task, 1, false); err != nil || !strings.Contains(got, marker(b.Task)+" line 200\n") {
			t.Errorf("the newer job's log through node%d: got %d bytes, %v", i, len(got), err)
		}
	}
	var keep []string
	for _, n := range m.Nodes {
		if n.BlobStore().Has(blobs.Hash(refB.Hash)) {
			keep = append(keep, n.Name())
		}
	}
	if _, holds, _ := sealedAttempt(m.Nodes[0], b.Task, 1); len(keep) == 0 || holds == 0 {
		t.Errorf("the newer job's sealed log: on the disks of %v, %d holders recorded; want it kept", keep, holds)
	}
	if _, holds, ok := sealedAttempt(m.Nodes[0], a2.Task, 1); ok {
		t.Errorf("job 2's raw log was sealed past its retention (%d holders); want it removed", holds)
	}
}

// TestRawCopyOfASealedLogRetired: a node that crashed after its seal was
// recorded but before its raw log went (the state is made on its disk
// while it is down) finds the raw copy when it comes back and retires it:
// the sealed log serves the readers.
func TestRawCopyOfASealedLogRetired(t *testing.T) {
	conf := func(i int, c *node.Config) {
		if i == 2 {
			c.Topics = topics("solo")
		}
	}
	m := startMesh(t, 3, conf)
	cfg := m.Config(2)
	conf(2, &cfg)
	r := spawn(t, m.Client(0), "solo", "sh", "-c", markerScript(100, "true"))
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
	waitSealedAttempt(t, m, 0, r.Task, 1, "node2", waitLong)
	raw := filepath.Join(m.Nodes[2].DataDir(), "logs", r.Task, "1.log")
	m.WaitFor(waitLong, "node2's raw copy to go once sealed", func() (bool, string) {
		_, err := os.Stat(raw)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	want := readLog(t, m.Client(0), r.Task)
	m.Nodes[2].Kill()
	if err := os.MkdirAll(filepath.Dir(raw), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Restart(2, cfg)
	m.WaitFor(waitLong, "node2 to retire the raw copy of its sealed log", func() (bool, string) {
		_, err := os.Stat(filepath.Dir(raw))
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	if got := readLog(t, m.Client(2), r.Task); got != want {
		t.Errorf("the log through node2 after: got %d bytes, want %d", len(got), len(want))
	}
}

// TestLogRecordedOnceTheMeshCan: a log sealed while the ledger cannot
// record it (a voter still on a binary that knows no sealed logs, for
// longer than the end of the attempt tries) is recorded by the sweep once
// the voter is upgraded: the blob sealed at the end, not sealed again.
func TestLogRecordedOnceTheMeshCan(t *testing.T) {
	logs := newRecords()
	conf := func(i int, c *node.Config) {
		switch i {
		case 1:
			c.GossipSchema = 1 // a voter on a binary before sealed logs
		case 2:
			c.Topics = topics("solo")
			c.Logger = slog.New(logs)
		}
	}
	m := startMesh(t, 3, conf)
	r := spawn(t, m.Client(0), "solo", "sh", "-c", markerScript(100, "true"))
	checkJob(t, m.WaitJob(0, r.Job, waitLong), "closed", "passed", "")
	var held map[string]string
	m.WaitFor(2*waitLong, "node2 to give up recording the seal (the old voter holds it back)", func() (bool, string) {
		got := logs.matching("task log: sealed but not recorded", r.Task)
		if len(got) > 0 {
			held = got[0]
		}
		return len(got) > 0, "not yet"
	})
	if _, _, ok := sealedAttempt(m.Nodes[0], r.Task, 1); ok {
		t.Fatal("the log is recorded while a voter knows only schema 1: the test shows nothing")
	}
	want := readLog(t, m.Client(0), r.Task) // from node2's raw log
	// The upgrade: node1 comes back on a binary that knows schema 2.
	cfg1 := m.Config(1)
	m.Nodes[1].Close()
	m.Restart(1, cfg1)
	ref := waitSealedAttempt(t, m, 0, r.Task, 1, "node2", 2*waitLong)
	if ref.Hash != held["hash"] {
		t.Errorf("recorded blob %s, want %s, the one sealed at the end (sealed again?)", ref.Hash, held["hash"])
	}
	if done := logs.matching("task log sweep: sealed and recorded", r.Task); len(done) != 1 {
		t.Errorf("the sweep's lines about the record: %v, want one", done)
	}
	m.Nodes[2].Kill()
	if got := readLog(t, m.Client(0), r.Task); got != want {
		t.Errorf("the log through node0 with node2 gone: got %d bytes, want the %d it had", len(got), len(want))
	}
}
