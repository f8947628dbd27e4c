package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// TestLogsFollowFromAnyNode checks that a node that does not run a task
// relays its log as it is written and ends the stream when the task ends.
func TestLogsFollowFromAnyNode(t *testing.T) {
	m := startMesh(t, 2, func(i int, c *node.Config) {
		if i == 0 {
			c.Topics = topics("t") // node0 runs the task; node1 relays
		}
	})
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf("echo one; while [ ! -f %s ]; do sleep 0.05; done; echo two", flag)
	r := spawn(t, m.Client(0), "t", "sh", "-c", script)

	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	m.WaitFor(waitLong, "node1's replica to hold the job", func() (bool, string) {
		_, err := m.Client(1).Job(ctx, r.Job, 0, 0)
		return err == nil, fmt.Sprint(err)
	})
	rc, err := m.Client(1).Log(ctx, r.Task, true)
	if err != nil {
		t.Fatalf("follow the log through node1: %v", err)
	}
	defer rc.Close()
	s := &stream{done: make(chan struct{})}
	go s.read(rc)
	defer func() { cancel(); <-s.done }()

	m.WaitFor(waitLong, `the line "one" through node1`, func() (bool, string) {
		return s.has("one"), fmt.Sprintf("got %q", s.text())
	})
	if s.has("two") || closed(s.done) {
		t.Fatalf("before the flag file: got %q (ended %v), want only up to \"one\" and the stream open", s.text(), closed(s.done))
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(waitLong, `the line "two" and the end of the stream`, func() (bool, string) {
		return s.has("two") && closed(s.done), fmt.Sprintf("got %q, ended %v", s.text(), closed(s.done))
	})
	if err := s.error(); !errors.Is(err, io.EOF) {
		t.Errorf("end of the followed log: got %v, want EOF", err)
	}
	checkJob(t, m.WaitJob(1, r.Job, waitLong), "closed", "passed", "")
}

// stream collects what a reader yields, for the test goroutine to poll.
type stream struct {
	mu   sync.Mutex
	buf  strings.Builder
	err  error
	done chan struct{}
}

func (s *stream) read(r io.Reader) {
	defer close(s.done)
	b := make([]byte, 4096)
	for {
		k, err := r.Read(b)
		s.mu.Lock()
		s.buf.Write(b[:k])
		s.err = err
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *stream) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// has reports whether a whole line equal to line has arrived (the node's
// own notes quote the script, so a substring would not do).
func (s *stream) has(line string) bool {
	return slices.Contains(strings.Split(s.text(), "\n"), line)
}

// TestLogsOutliveTheirNode: a finished attempt's log is sealed into a blob
// recorded in the ledger and replicated; once its node is killed for
// good, every other node serves it whole, byte for byte, without it. The
// node's raw copy goes once the seal is recorded.
func TestLogsOutliveTheirNode(t *testing.T) {
	m := startMesh(t, 3, func(i int, c *node.Config) {
		if i == 0 {
			c.Topics = topics("t") // node0 runs the task, then dies
		}
	})
	r := spawn(t, m.Client(1), "t", "sh", "-c", `i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo "line $i of the build"; done; printf 'no newline'`)
	checkJob(t, m.WaitJob(1, r.Job, waitLong), "closed", "passed", "")

	var ref raftfsm.LogRef
	m.WaitFor(waitLong, "the log sealed and held by two nodes", func() (bool, string) {
		holders := 0
		m.Nodes[1].FSM().Read(func(s *raftfsm.State, _ uint64) {
			if tk := s.Tasks[r.Task]; tk != nil && len(tk.Logs) > 0 {
				ref = tk.Logs[0]
				if b := s.Blobs[ref.Hash]; b != nil {
					holders = len(b.Holders)
				}
			}
		})
		return ref.Hash != "" && holders >= 2, fmt.Sprintf("sealed %+v, %d holders", ref, holders)
	})
	ctx := testCtx(t)
	read := func(i int) string {
		t.Helper()
		rc, err := m.Client(i).Log(ctx, r.Task, false)
		if err != nil {
			t.Fatalf("log through node%d: %v", i, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("log through node%d: %v", i, err)
		}
		return string(b)
	}
	want := read(0)
	if !strings.Contains(want, "line 1 of the build\n") || !strings.Contains(want, "line 2000 of the build\nno newline") {
		t.Fatalf("the log on its own node: got %d bytes, want the task's 2000 lines:\n%.300s", len(want), want)
	}
	if int64(len(want)) != ref.Bytes {
		t.Errorf("sealed bytes: ledger says %d, the log is %d", ref.Bytes, len(want))
	}
	raw := filepath.Join(m.Nodes[0].DataDir(), "logs", r.Task, "1.log")
	m.WaitFor(waitLong, "node0's raw copy to go", func() (bool, string) {
		_, err := os.Stat(raw)
		return errors.Is(err, os.ErrNotExist), fmt.Sprint(err)
	})
	m.Nodes[0].Kill()
	for _, i := range []int{1, 2} {
		if got := read(i); got != want {
			t.Errorf("log through node%d after node0 died: got %d bytes, want the %d it had:\n%.300s", i, len(got), len(want), got)
		}
	}
	// Served in pieces: a byte range, and every line with its time.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.Nodes[2].URL()+"/v1/tasks/"+r.Task+"/log", nil)
	req.Header.Set("Authorization", "Bearer "+m.Secret.ClusterToken())
	req.Header.Set("Range", "bytes=7-26")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != want[7:27] {
		t.Errorf("range 7-26: got %s %q, want 206 %q", resp.Status, part, want[7:27])
	}
	rc, err := m.Client(2).LogOf(ctx, r.Task, api.LogOptions{Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	stamped, _ := io.ReadAll(rc)
	rc.Close()
	var plain strings.Builder
	for _, l := range strings.SplitAfter(string(stamped), "\n") {
		if l == "" {
			continue
		}
		at, rest, ok := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, at); !ok || err != nil {
			t.Fatalf("--timestamps: line %q does not start with a time", l)
		}
		plain.WriteString(rest)
	}
	if plain.String() != want {
		t.Errorf("--timestamps: the lines without their times are not the log")
	}
	rc, err = m.Client(2).LogOf(ctx, r.Task, api.LogOptions{Tail: 3})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(rc)
	rc.Close()
	lines := strings.SplitAfter(strings.TrimSuffix(want, "\n"), "\n")
	lines[len(lines)-1] += "\n"
	if wantTail := strings.Join(lines[len(lines)-3:], ""); string(tail) != wantTail {
		t.Errorf("--tail 3: got %q, want %q", tail, wantTail)
	}
}

// startDyingRunner starts a 3-node mesh where node2 runs a task that
// prints 300 steps and hangs (for the test to kill node2 with it), and
// waits for node0 or node1 (holder) to hold a copy of all 300.
func startDyingRunner(t *testing.T) (m *nodetest.Mesh, r api.SpawnResponse, holder int) {
	t.Helper()
	m = startMesh(t, 3, func(i int, c *node.Config) {
		if i == 2 {
			c.Topics = topics("t") // node2 (not the first leader) runs the task and dies with it
		}
	})
	r = spawn(t, m.Client(1), "t", "sh", "-c", `i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo "step $i"; done; exec sleep 600`)
	holder = -1
	m.WaitFor(waitLong, "node0 or node1 to hold the streamed output up to step 300", func() (bool, string) {
		for _, i := range []int{0, 1} {
			if b, ok := m.Nodes[i].LogCopy(r.Task, 1); ok && strings.Contains(string(b), "step 300\n") {
				holder = i
				return true, ""
			}
		}
		return false, "no copy has it all yet"
	})
	return m, r, holder
}

// TestLogsOfANodeThatDiesMidRun: a running attempt's output streams to
// another node as it is written; when its node dies with it, the other
// nodes serve the output up to the last chunk, and the copy's holder
// seals it, marked where it ends, so it stays once the copy is gone.
func TestLogsOfANodeThatDiesMidRun(t *testing.T) {
	m, r, holder := startDyingRunner(t)
	m.Nodes[2].Kill()
	ctx := testCtx(t)
	read := func(i int) (string, error) {
		rc, err := m.Client(i).LogOf(ctx, r.Task, api.LogOptions{Attempt: 1})
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	for _, i := range []int{0, 1} {
		m.WaitFor(waitLong, fmt.Sprintf("node%d to serve attempt 1's output without node2", i), func() (bool, string) {
			got, err := read(i)
			return err == nil && strings.Contains(got, "step 1\n") && strings.Contains(got, "step 300\n"), fmt.Sprintf("got %d bytes, %v", len(got), err)
		})
	}
	// Its node must be found dead and the attempt given away first.
	m.WaitFor(2*waitLong, "the copy's holder to seal attempt 1", func() (bool, string) {
		var logs []raftfsm.LogRef
		m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
			if tk := s.Tasks[r.Task]; tk != nil {
				logs = slices.Clone(tk.Logs)
			}
		})
		return len(logs) == 1 && logs[0].Attempt == 1 && logs[0].Node == m.Nodes[holder].Name(), fmt.Sprintf("sealed logs %+v", logs)
	})
	for _, i := range []int{0, 1} {
		got, err := read(i)
		if err != nil || !strings.Contains(got, "step 300\n") || !strings.Contains(got, "the log ends here: its node node2 stopped streaming it") {
			t.Errorf("sealed attempt 1 through node%d: got %v\n%.500s", i, err, got)
		}
	}
}

// TestExpiredLogsLeaveEveryDisk: once a closed job's log retention ran
// out, its sealed logs leave the ledger and every node deletes its copy.
func TestExpiredLogsLeaveEveryDisk(t *testing.T) {
	clk := nodetest.NewClock(time.Now())
	m := startMesh(t, 3, func(i int, c *node.Config) {
		c.Clock, c.BlobRetention, c.LogRetention, c.JobHistory = clk, time.Hour, 2*time.Hour, 2*time.Hour
		c.JobTimeout, c.TaskTimeout = 90*24*time.Hour, 90*24*time.Hour
		c.Topics = topics("t")
	})
	r := spawn(t, m.Client(0), "t", "sh", "-c", "echo kept for two hours")
	m.WaitJob(0, r.Job, waitLong)
	var hash string
	m.WaitFor(waitLong, "the log sealed on two nodes", func() (bool, string) {
		m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
			if tk := s.Tasks[r.Task]; tk != nil && len(tk.Logs) > 0 {
				hash = tk.Logs[0].Hash
			}
		})
		hs := holders(m.Nodes[0], hash)
		return hash != "" && len(hs) >= 2, fmt.Sprintf("log %q, holders %v", hash, hs)
	})
	clk.Advance(time.Hour + time.Minute) // the blob retention: the log stays
	ctx := testCtx(t)
	rc, err := m.Client(1).Log(ctx, r.Task, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); !strings.Contains(string(b), "kept for two hours") {
		t.Errorf("log after the blob retention: got %q", b)
	}
	rc.Close()
	clk.Advance(time.Hour) // the log retention and the job's history ran out
	m.WaitFor(waitLong, "the job and its log to leave the ledger", func() (bool, string) {
		gone := true
		m.Nodes[0].FSM().Read(func(s *raftfsm.State, _ uint64) {
			_, job := s.Jobs[r.Job]
			_, blob := s.Blobs[hash]
			gone = !job && !blob
		})
		return gone, "still there"
	})
	clk.Advance(11 * time.Minute) // past the collection's grace for copies the ledger does not know
	m.WaitFor(waitLong, "every node to delete its copy", func() (bool, string) {
		var held []string
		for _, n := range m.Nodes {
			if n.BlobStore().Has(blobs.Hash(hash)) {
				held = append(held, n.Name())
			}
		}
		return len(held) == 0, fmt.Sprintf("still on %v", held)
	})
}
