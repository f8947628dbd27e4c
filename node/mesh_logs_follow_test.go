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
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/nodetest"
)

// openLog GETs task's log through node nd with the query q, as a user's
// client would, and returns the answer with its headers.
func openLog(t *testing.T, ctx context.Context, m *nodetest.Mesh, nd *node.Node, task, q string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nd.URL()+"/v1/tasks/"+task+"/log?"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m.Secret.ClusterToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("log of %s through %s (%s): %v", task, nd.Name(), q, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("log of %s through %s (%s): got %s %s, want 200", task, nd.Name(), q, resp.Status, b)
	}
	return resp
}

// unstamp drops the time before each line of a --timestamps stream,
// failing on a line that has none.
func unstamp(t *testing.T, stamped string) string {
	t.Helper()
	var plain strings.Builder
	for _, l := range strings.SplitAfter(stamped, "\n") {
		if l == "" {
			continue
		}
		at, rest, ok := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, at); !ok || err != nil {
			t.Fatalf("stamped log: line %q does not start with a time", l)
		}
		plain.WriteString(rest)
	}
	return plain.String()
}

// TestLogsFollowFromTheNearestCopy: a node that cannot reach the node
// running a task still follows its log, from the node that holds a copy
// of it: the output so far, then each line as it comes, to the end, with
// timestamps too, and what it read is the log sealed at the end. The
// runner is never asked: this node's links to it are cut.
func TestLogsFollowFromTheNearestCopy(t *testing.T) {
	m := nodetest.StartFaulty(t, 4, func(i int, c *node.Config) {
		if i == 0 {
			c.Topics = topics("t") // node0 runs the task
		}
		c.HTTPWriteTimeout = time.Second // a follow outlives it, on both ports
	})
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf("echo one; while [ ! -f %s ]; do sleep 0.05; done; echo two", flag)
	r := spawn(t, m.Client(1), "t", "sh", "-c", script)

	holder := -1
	m.WaitFor(waitLong, `a node to hold a copy of the output up to "one"`, func() (bool, string) {
		for i := 1; i < len(m.Nodes); i++ {
			if b, ok := m.Nodes[i].LogCopy(r.Task, 1); ok && slices.Contains(strings.Split(string(b), "\n"), "one") {
				holder = i
				return true, ""
			}
		}
		return false, "no copy has it yet"
	})
	leader := m.Leader()
	reader := -1
	for i := 1; i < len(m.Nodes); i++ {
		if i != holder && i != leader {
			reader = i
			break
		}
	}
	rd, hd := m.Nodes[reader], m.Nodes[holder]
	// The reader reaches neither the runner's peer port nor its Raft: its
	// replica still follows the ledger, which the leader pushes to it.
	m.Faults.Block(rd.Name(), m.Nodes[0].Name())
	t.Logf("node0 runs %s, %s holds the copy, %s reads it and cannot reach node0, %s leads", r.Task, hd.Name(), rd.Name(), m.Nodes[leader].Name())

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitLong)
	defer cancel()
	m.WaitFor(waitLong, rd.Name()+"'s replica to hold the task running on node0", func() (bool, string) {
		v, err := m.Client(reader).Job(ctx, r.Job, 0, 0)
		if err != nil {
			return false, err.Error()
		}
		tv, _ := task(v, r.Task)
		return tv.State == "running", "state " + string(tv.State)
	})

	// A snapshot: the output so far, from the copy.
	resp := openLog(t, ctx, m, rd, r.Task, "")
	snap, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Ourci-Log-Copy"); got != hd.Name() || err != nil {
		t.Errorf("snapshot through %s: served from the copy of %q (%v), want %s's", rd.Name(), got, err, hd.Name())
	}
	if lines := strings.Split(string(snap), "\n"); !slices.Contains(lines, "one") || slices.Contains(lines, "two") {
		t.Errorf("snapshot through %s while the task waits: got %q, want the output up to \"one\"", rd.Name(), snap)
	}

	// Two follows: the plain bytes and every line stamped.
	plainResp := openLog(t, ctx, m, rd, r.Task, "follow=1")
	stampResp := openLog(t, ctx, m, rd, r.Task, "follow=1&timestamps=1")
	plain, stamped := &stream{done: make(chan struct{})}, &stream{done: make(chan struct{})}
	go plain.read(plainResp.Body)
	go stamped.read(stampResp.Body)
	defer func() { cancel(); <-plain.done; <-stamped.done }()
	for _, resp := range []*http.Response{plainResp, stampResp} {
		if got := resp.Header.Get("X-Ourci-Log-Copy"); got != hd.Name() {
			t.Errorf("follow through %s (%s): served from the copy of %q, want %s's", rd.Name(), resp.Request.URL.RawQuery, got, hd.Name())
		}
	}
	m.WaitFor(waitLong, `both follows to have "one"`, func() (bool, string) {
		return plain.has("one") && strings.HasSuffix(stamped.text(), " one\n"), fmt.Sprintf("plain %q, stamped %q", plain.text(), stamped.text())
	})
	opened := time.Now()
	m.WaitFor(waitLong, "the follows to stay open past the write timeout", func() (bool, string) {
		return time.Since(opened) > 3*time.Second || closed(plain.done) || closed(stamped.done), "open"
	})
	if plain.has("two") || closed(plain.done) || closed(stamped.done) {
		t.Fatalf("before the flag file: got %q (ended %v, stamped ended %v), want only up to \"one\" and both open", plain.text(), closed(plain.done), closed(stamped.done))
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.WaitFor(waitLong, `both follows to have "two" and end`, func() (bool, string) {
		return plain.has("two") && closed(plain.done) && closed(stamped.done), fmt.Sprintf("got %q, ended %v, stamped ended %v", plain.text(), closed(plain.done), closed(stamped.done))
	})
	for name, s := range map[string]*stream{"plain": plain, "stamped": stamped} {
		if err := s.error(); !errors.Is(err, io.EOF) {
			t.Errorf("end of the %s follow: got %v, want EOF", name, err)
		}
	}
	for name, resp := range map[string]*http.Response{"plain": plainResp, "stamped": stampResp} {
		if got := resp.Trailer.Get("X-Ourci-Log-Whole"); got != "true" {
			t.Errorf("%s follow: trailer X-Ourci-Log-Whole %q, want true (the copy's last chunk came)", name, got)
		}
	}
	checkJob(t, m.WaitJob(reader, r.Job, waitLong), "closed", "passed", "")

	// What the follows read is the log sealed at the end, byte for byte
	// (healed first: the reader may be the one the seal replicates to).
	m.Heal()
	waitSealed(t, m, r.Task)
	resp = openLog(t, ctx, m, rd, r.Task, "")
	sealed, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if plain.text() != string(sealed) {
		t.Errorf("followed through %s:\n%q\nsealed:\n%q", rd.Name(), plain.text(), sealed)
	}
	if got := unstamp(t, stamped.text()); got != string(sealed) {
		t.Errorf("stamped follow without its times:\n%q\nsealed:\n%q", got, sealed)
	}
}

// TestLogsFollowOutlivesTheRunner: a follow through a node that neither
// runs the task nor holds its copy goes on when the runner dies with the
// task: it has the output up to the last chunk, then the end of the log
// the copy's holder seals, and ends.
func TestLogsFollowOutlivesTheRunner(t *testing.T) {
	m, r, holder := startDyingRunner(t)
	reader := 1 - holder
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitLong)
	defer cancel()
	resp := openLog(t, ctx, m, m.Nodes[reader], r.Task, "follow=1")
	s := &stream{done: make(chan struct{})}
	go s.read(resp.Body)
	defer func() { cancel(); <-s.done }()
	m.WaitFor(waitLong, "the follow to have step 300", func() (bool, string) {
		return s.has("step 300"), fmt.Sprintf("got %d bytes", len(s.text()))
	})
	if got := resp.Header.Get("X-Ourci-Log-Copy"); got != m.Nodes[holder].Name() {
		t.Errorf("follow through node%d: served from the copy of %q, want node%d's", reader, got, holder)
	}
	m.Nodes[2].Kill()
	// Its node must be found dead and the attempt given away before the
	// holder seals what it has.
	m.WaitFor(3*waitLong, "the follow to end with the sealed log's last note", func() (bool, string) {
		return closed(s.done), fmt.Sprintf("got %d bytes so far, ending %q", len(s.text()), s.text()[max(0, len(s.text())-120):])
	})
	if err := s.error(); !errors.Is(err, io.EOF) {
		t.Errorf("end of the follow: got %v, want EOF", err)
	}
	got := s.text()
	if !strings.Contains(got, "step 1\n") || !strings.Contains(got, "step 300\n") || !strings.Contains(got, "the log ends here: its node node2 stopped streaming it") {
		t.Errorf("followed through node%d: got\n%.2000s", reader, got)
	}
	if strings.Count(got, "step 300\n") != 1 {
		t.Errorf("followed through node%d: step 300 came %d times, want once (a follow goes on where its source stopped)", reader, strings.Count(got, "step 300\n"))
	}
}
