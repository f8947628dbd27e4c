package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
	"github.com/ourci/ourci/node/peer"
	"github.com/ourci/ourci/node/tasklog"
)

// shipRig is one attempt's log streamed by a shipper to a target behind
// handler, without a mesh: the runner is a bare Node whose target is
// itself by name (memberURL), served by handler.
type shipRig struct {
	l    *tasklog.Log
	path string // of its file
	st   *logStream
	s    *shipper
	ch   *tasklog.Chunker
}

func newShipRig(t *testing.T, handler http.Handler) *shipRig {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	secret := NewSecret()
	n := &Node{cfg: Config{Name: "runner", Secret: secret}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		peerURL: srv.URL, peerHTTP: srv.Client(), ctx: ctx,
		peers: &peer.Client{HTTP: srv.Client(), Token: secret.ClusterToken(), Self: "runner"}}
	store := tasklog.New(t.TempDir(), 0)
	l, err := store.Create("t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	x := &shipRig{l: l, path: filepath.Join(store.Dir(), "t1", "1.log"), st: &logStream{l: l}, ch: tasklog.NewChunker("t1", 1)}
	x.s = &shipper{n: n, st: x.st, to: "runner", task: "t1", job: "j1", attempt: 1, wake: make(chan struct{}, 1), done: make(chan struct{})}
	x.st.ships = []*shipper{x.s}
	l.Tee(func(at time.Time, p []byte) {
		x.st.mu.Lock()
		defer x.st.mu.Unlock()
		x.st.publish(x.ch.Write(at, p)...)
	})
	go x.s.run(ctx)
	t.Cleanup(func() { cancel(); <-x.s.done; l.Finish() })
	return x
}

// flush cuts what is pending, as the ticker does a second on.
func (x *shipRig) flush() {
	x.st.mu.Lock()
	defer x.st.mu.Unlock()
	if c, ok := x.ch.Tick(time.Now().Add(time.Hour)); ok {
		x.st.publish(c)
	}
}

// end closes the stream as streamLog's stop does, but without its time
// limit.
func (x *shipRig) end() {
	x.l.Tee(nil)
	x.st.mu.Lock()
	x.st.publish(x.ch.Close())
	x.st.mu.Unlock()
	x.s.finish()
}

// replicaTarget is a node that holds copies (takeChunks) and can be
// down (503) or lose its copies (a restart); it records each request.
type replicaTarget struct {
	n      *Node
	mu     sync.Mutex
	down   bool
	posts  []time.Time
	bodies []int
}

func newReplicaTarget() *replicaTarget {
	return &replicaTarget{n: &Node{cfg: Config{Name: "holder"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

func (rt *replicaTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/internal/logs/{task}/{attempt}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rt.mu.Lock()
		rt.posts, rt.bodies = append(rt.posts, time.Now()), append(rt.bodies, len(body))
		down := rt.down
		rt.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		attempt, _ := strconv.Atoi(r.PathValue("attempt"))
		rt.n.takeChunks(w, r.PathValue("task"), attempt, r.Header.Get(streamerHeader), body)
	})
	mux.ServeHTTP(w, r)
}

func (rt *replicaTarget) setDown(down bool) {
	rt.mu.Lock()
	rt.down = down
	rt.mu.Unlock()
}

// restart drops every copy the target holds.
func (rt *replicaTarget) restart() {
	rt.n.live.mu.Lock()
	rt.n.live.m, rt.n.live.bytes = nil, 0
	rt.n.live.mu.Unlock()
}

func (rt *replicaTarget) requests() (n int, maxBody int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, b := range rt.bodies {
		maxBody = max(maxBody, b)
	}
	return len(rt.posts), maxBody
}

// waitWhole waits until the target's copy is the log's whole file.
func waitWhole(t *testing.T, rt *replicaTarget, x *shipRig, path string) {
	t.Helper()
	wait.For(t, 20*time.Second, "the target's copy to be the whole log", func() (bool, string) {
		b, done, ok := rt.n.liveLog("t1", 1)
		file, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		return ok && done && bytes.Equal(b, file), fmt.Sprintf("copy %d bytes (done %v, held %v), file %d", len(b), done, ok, len(file))
	})
	select {
	case <-x.s.done:
	case <-time.After(wait.Scale(5 * time.Second)):
		t.Errorf("the shipper did not stop once its target had the whole log")
	}
}

// A target that is down while the task prints 20 MiB: the shipper keeps
// at most maxPendingLog in memory, drops the rest, and once the target is
// back sends it all from the file, a MiB or so a request.
func TestShipperBoundedAndCatchesUpFromTheFile(t *testing.T) {
	rt := newReplicaTarget()
	rt.setDown(true)
	x := newShipRig(t, rt)
	line := []byte(strings.Repeat("output of a busy build ", 4) + "\n")
	peak := int64(0)
	for i := 0; i < (20<<20)/len(line); i++ {
		x.l.Write(line)
		if i%1000 == 0 {
			x.s.mu.Lock()
			peak = max(peak, x.s.bytes)
			x.s.mu.Unlock()
		}
	}
	x.s.mu.Lock()
	peak, kept, cut := max(peak, x.s.bytes), len(x.s.pending), x.s.cut
	x.s.mu.Unlock()
	if peak > maxPendingLog || kept == 0 || uint64(kept) >= cut {
		t.Fatalf("while its target is down the shipper held up to %d bytes in %d of %d chunks: want at most %d, the oldest dropped", peak, kept, cut, maxPendingLog)
	}
	rt.setDown(false)
	x.l.Write([]byte("after the target came back\n"))
	x.end()
	waitWhole(t, rt, x, x.path)
	if n, maxBody := rt.requests(); maxBody > 2*maxLogPost {
		t.Errorf("%d requests, the biggest of %d bytes: want each about %d at most", n, maxBody, maxLogPost)
	}
}

// A target that lost its copy (it restarted) answers 409 next=0 to the
// next chunk: the shipper sends it everything again from the file.
func TestShipperResendsToARestartedTarget(t *testing.T) {
	rt := newReplicaTarget()
	x := newShipRig(t, rt)
	for i := range 30000 {
		fmt.Fprintf(x.l, "line %d\n", i)
	}
	x.flush()
	wait.For(t, 20*time.Second, "the target to hold the first lines", func() (bool, string) {
		b, _, _ := rt.n.liveLog("t1", 1)
		return bytes.Contains(b, []byte("line 29999\n")), fmt.Sprintf("%d bytes", len(b))
	})
	rt.restart()
	x.l.Write([]byte("after the restart\n"))
	x.end()
	waitWhole(t, rt, x, x.path)
}

// A target that answers 409 whatever it is sent is asked again and again
// only after a growing pause, never in a tight loop; one that refuses for
// good (a 4xx other than 409) is given up.
func TestShipperBacksOff(t *testing.T) {
	var mu sync.Mutex
	var posts []time.Time
	conflict := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		posts = append(posts, time.Now())
		mu.Unlock()
		writeJSON(w, http.StatusConflict, map[string]any{"next": 0})
	})
	x := newShipRig(t, conflict)
	x.l.Write([]byte("a line\n"))
	x.flush()
	var got []time.Time
	wait.For(t, 20*time.Second, "5 requests to the target that always answers 409", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got[:0], posts...)
		return len(got) >= 5, fmt.Sprintf("%d so far", len(got))
	})
	// 100, 200, 400 and 800 ms between them: 1.5 s at least.
	if d := got[4].Sub(got[0]); d < 1500*time.Millisecond {
		t.Errorf("5 requests in %s: want a backoff between them (1.5 s at least)", d)
	}

	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "no", http.StatusForbidden)
	})
	y := newShipRig(t, refuse)
	y.l.Write([]byte("a line\n"))
	y.end()
	select {
	case <-y.s.done:
	case <-time.After(wait.Scale(10 * time.Second)):
		t.Fatalf("the shipper of a target that answers 403 did not give up")
	}
}
