package node_test

// Attacks on a node's network surfaces (issue 15, findings 4, 5, 8, 13):
// replayed webhooks, unsigned webhook floods, idle sockets, and floods of
// garbage at the gossip and peer ports.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/executor"
	"github.com/ourci/ourci/node/github/githubtest"
	"github.com/ourci/ourci/node/nodetest"
	"github.com/ourci/ourci/raftfsm"
)

// repoCommits makes DIR/owner/repo.git with n commits on branch feature
// and returns their SHAs, oldest first.
func repoCommits(t *testing.T, dir, owner, repo string, n int) []string {
	t.Helper()
	bare := filepath.Join(dir, owner, repo+".git")
	work := filepath.Join(t.TempDir(), "w")
	git := func(d string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", d, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(filepath.Dir(bare), 0o755)
	git(filepath.Dir(bare), "init", "-q", "--bare", bare)
	os.MkdirAll(work, 0o755)
	git(work, "init", "-q", "-b", "feature")
	var shas []string
	for i := range n {
		os.WriteFile(filepath.Join(work, "README"), []byte(fmt.Sprintf("version %d\n", i)), 0o644)
		git(work, "add", ".")
		git(work, "commit", "-qm", fmt.Sprintf("commit %d", i))
		shas = append(shas, git(work, "rev-parse", "HEAD"))
	}
	git(work, "push", "-q", bare, "feature")
	return shas
}

// TestWebhookReplayCannotSupersede (finding 4): the signature does not
// cover X-GitHub-Delivery, so an attacker can resend any signed body with
// a new delivery ID. A body seen before opens nothing (deduplicated by its
// content), and a body for a head older than the pull request's current
// one is ignored: the current job is never closed as superseded by it.
// A real new push, and a force-push back to an old commit (a new
// updated_at), still supersede.
func TestWebhookReplayCannotSupersede(t *testing.T) {
	repos := t.TempDir()
	sha := repoCommits(t, repos, "octo", "fw", 3)
	a, b, c := sha[0], sha[1], sha[2]
	g := startGitHubMesh(t, repos)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pr := func(at time.Duration, action, head string) []byte {
		return githubtest.PullRequestAt(t0.Add(at), action, "octo", "fw", 5, head, "feature", false)
	}
	job := func(id string) api.JobDetail {
		t.Helper()
		d, err := g.Client(0).Job(ctx, id, 0, 0)
		if err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
		return d
	}
	follower := g.Follower()

	opened := pr(0, "opened", a)
	code, j1 := g.deliver(t, follower, "pull_request", "d-1", opened, g.secret)
	if code != http.StatusCreated {
		t.Fatalf("opened at A: got %d, want 201", code)
	}
	pushB := pr(time.Minute, "synchronize", b)
	code, j2 := g.deliver(t, 0, "pull_request", "d-2", pushB, g.secret)
	if code != http.StatusCreated || j2 == j1 {
		t.Fatalf("synchronize to B: got %d job %q, want 201 and a new job", code, j2)
	}
	if d := g.WaitJob(0, j1, 30*time.Second); d.Job.Reason != raftfsm.ReasonSuperseded || d.Job.Successor != j2 {
		t.Fatalf("job at A: got %s %q by %q, want superseded by %s", d.Job.Status, d.Job.Reason, d.Job.Successor, j2)
	}

	jobsBefore := len(g.Nodes[0].Status().Jobs)
	for _, tt := range []struct {
		name     string
		delivery string
		body     []byte
		wantJob  string // the job answered with; "" for an ignored delivery
	}{
		{"the opened body at A, a new delivery ID", "attack-1", opened, j1},
		{"the synchronize body at B, a new delivery ID", "attack-2", pushB, j2},
		{"the opened body at A, its own delivery ID again", "d-1", opened, j1},
		{"a signed body never delivered: synchronize at A, updated before B", "attack-3", pr(30*time.Second, "synchronize", a), ""},
		{"reopened at A with B's updated_at: A was an earlier head", "attack-4", pr(time.Minute, "reopened", a), ""},
		{"reopened at A without updated_at: A was an earlier head", "attack-5", stripUpdated(t, pr(0, "reopened", a)), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, i := range []int{0, follower} {
				code, got := g.deliver(t, i, "pull_request", tt.delivery, tt.body, g.secret)
				if code != http.StatusOK || got != tt.wantJob {
					t.Errorf("to node%d: got %d job %q, want 200 and job %q", i, code, got, tt.wantJob)
				}
			}
			if d := job(j2); d.Job.State != raftfsm.JobOpen || d.Job.Successor != "" {
				t.Fatalf("the current job %s: got %s %s %q by %q, want it open", j2, d.Job.State, d.Job.Status, d.Job.Reason, d.Job.Successor)
			}
		})
	}
	if got := len(g.Nodes[0].Status().Jobs); got != jobsBefore {
		t.Errorf("jobs after the replays: got %d, want %d (none opened)", got, jobsBefore)
	}

	// A real push to C supersedes B; a force-push back to A (GitHub stamps
	// a new updated_at) supersedes C: both build.
	code, j3 := g.deliver(t, follower, "pull_request", "d-3", pr(2*time.Minute, "synchronize", c), g.secret)
	if code != http.StatusCreated {
		t.Fatalf("synchronize to C: got %d, want 201", code)
	}
	if d := g.WaitJob(0, j2, 30*time.Second); d.Job.Reason != raftfsm.ReasonSuperseded || d.Job.Successor != j3 {
		t.Fatalf("job at B after the push to C: got %q by %q, want superseded by %s", d.Job.Reason, d.Job.Successor, j3)
	}
	code, j4 := g.deliver(t, 0, "pull_request", "d-4", pr(3*time.Minute, "synchronize", a), g.secret)
	if code != http.StatusCreated {
		t.Fatalf("force-push back to A: got %d, want 201", code)
	}
	if d := g.WaitJob(0, j3, 30*time.Second); d.Job.Reason != raftfsm.ReasonSuperseded || d.Job.Successor != j4 {
		t.Fatalf("job at C after the force-push: got %q by %q, want superseded by %s", d.Job.Reason, d.Job.Successor, j4)
	}
	// And pushing B again (its synchronize was seen, for J2) builds too:
	// GitHub stamped it later.
	code, j5 := g.deliver(t, follower, "pull_request", "d-5", pr(4*time.Minute, "synchronize", b), g.secret)
	if code != http.StatusCreated || j5 == j2 {
		t.Fatalf("force-push back to B: got %d job %q, want 201 and a new job", code, j5)
	}
	if d := g.WaitJob(0, j4, 30*time.Second); d.Job.Reason != raftfsm.ReasonSuperseded || d.Job.Successor != j5 {
		t.Fatalf("job at A after the force-push back to B: got %q by %q, want superseded by %s", d.Job.Reason, d.Job.Successor, j5)
	}
	if d := job(j4); d.Job.GitHub == nil || d.Job.GitHub.Event != "pull_request synchronize #5 "+a || !d.Job.GitHub.Updated.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("the ledger's record of job %s: got %+v, want its event and updated_at stamped", j4, d.Job.GitHub)
	}
}

// stripUpdated removes pull_request.updated_at from a body (older GitHub
// Enterprise payloads, hand-made ones).
func stripUpdated(t *testing.T, body []byte) []byte {
	t.Helper()
	out := bytes.Replace(body, []byte(`"updated_at": "`), []byte(`"x_updated_at": "`), 1)
	if bytes.Equal(out, body) {
		t.Fatal("no updated_at in the body")
	}
	return out
}

// TestUnsignedWebhookFloodStaysBounded (finding 5): many large bodies with
// a well-formed but wrong signature, all in flight at once, hold no more
// of the node's heap than its cap of webhook bytes in flight; the rest
// are answered 503 with Retry-After; a signed delivery gets through after.
func TestUnsignedWebhookFloodStaysBounded(t *testing.T) {
	const (
		capBytes = 32 << 20
		size     = 12 << 20
		senders  = 16
	)
	repos := t.TempDir()
	sha := localRepo(t, repos, "octo", "fw")
	secret := []byte("flood secret")
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.Executor = executor.NewFake()
		c.Topics = []node.Topic{{Name: "ourci/build/docker"}}
		c.WebhookInflight = capBytes
		c.GitHub = &node.GitHubConfig{WebhookSecret: secret, CloneURL: filepath.Join(repos, "{owner}", "{repo}.git")}
	})
	nd := m.Nodes[0]
	addr := strings.TrimPrefix(nd.URL(), "http://")
	body := bytes.Repeat([]byte{'{'}, size)
	fakeSig := "sha256=" + strings.Repeat("00", 32)

	base := liveHeap()
	type result struct {
		code       int
		retryAfter string
		err        error
	}
	var (
		wg      sync.WaitGroup
		settled atomic.Int32 // senders that hold all but their last byte, or were answered
		hold    = make(chan struct{})
		results = make([]result, senders)
	)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, ra, err := holdWebhook(addr, fmt.Sprintf("flood-%d", i), fakeSig, body, &settled, hold)
			results[i] = result{code, ra, err}
		}()
	}
	nodetest.WaitFor(t, 60*time.Second, "every sender holds its last byte or was answered, and the node read all it was sent", func() (bool, string) {
		if n := settled.Load(); n < senders {
			return false, fmt.Sprintf("%d of %d senders settled", n, senders)
		}
		return socketsDrained(t, addr)
	})
	grew := liveHeap() - base
	inflight := nd.WebhookInflight()
	close(hold)
	wg.Wait()
	t.Logf("live heap grew %d MiB with %d senders of %d MiB in flight; the node reserved %d MiB", grew>>20, senders, size>>20, inflight>>20)
	if limit := int64(capBytes + 16<<20); grew > limit {
		t.Errorf("live heap with %d unsigned %d MiB bodies in flight: got +%d MiB, want at most +%d MiB (the cap of %d MiB and slack)", senders, size>>20, grew>>20, limit>>20, capBytes>>20)
	}
	if inflight > capBytes {
		t.Errorf("webhook bytes in flight: got %d, want at most %d", inflight, capBytes)
	}
	busy := 0
	for i, r := range results {
		switch {
		case r.code == http.StatusServiceUnavailable:
			busy++
			if r.retryAfter == "" {
				t.Errorf("sender %d: 503 without Retry-After", i)
			}
		case r.code == http.StatusUnauthorized:
		case r.err != nil && r.code == 0:
			// A refusal mid-body may reach the sender as a reset.
		default:
			t.Errorf("sender %d: got %d (%v), want 401 or 503", i, r.code, r.err)
		}
	}
	if busy == 0 {
		t.Errorf("no sender was answered 503: want the cap to turn some away (%+v)", results)
	}
	nodetest.WaitFor(t, 10*time.Second, "the node released every reservation", func() (bool, string) {
		n := nd.WebhookInflight()
		return n == 0, fmt.Sprintf("%d bytes in flight", n)
	})

	// A signed delivery gets through once the flood is over.
	req, err := githubtest.NewWebhookRequest(nd.URL()+"/webhook/github", secret, "pull_request", "real-1",
		githubtest.PullRequest("opened", "octo", "fw", 3, sha, "feature", false))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a signed delivery after the flood: got %d, want 201", resp.StatusCode)
	}
}

// liveHeap is the heap's live bytes after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// holdWebhook posts a webhook over a raw connection, writing all of body
// but its last byte, then (settled counted) waiting for hold before the
// last one; an answer that comes first ends it. It returns the status and
// Retry-After, or the error that ended the exchange.
func holdWebhook(addr, delivery, sig string, body []byte, settled *atomic.Int32, hold <-chan struct{}) (int, string, error) {
	var once sync.Once
	settle := func() { once.Do(func() { settled.Add(1) }) }
	defer settle()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(conn, "POST /webhook/github HTTP/1.1\r\nHost: ourci\r\nContent-Type: application/json\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: %s\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n", delivery, sig, len(body))
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		answered <- answer{resp, err}
	}()
	result := func(a answer) (int, string, error) {
		if a.err != nil {
			return 0, "", a.err
		}
		return a.resp.StatusCode, a.resp.Header.Get("Retry-After"), nil
	}
	const chunk = 256 << 10
	for off := 0; off < len(body)-1; off += chunk {
		select {
		case a := <-answered:
			return result(a)
		default:
		}
		if _, err := conn.Write(body[off:min(off+chunk, len(body)-1)]); err != nil {
			settle()
			return result(<-answered)
		}
	}
	settle()
	select {
	case a := <-answered:
		return result(a)
	case <-hold:
	}
	if _, err := conn.Write(body[len(body)-1:]); err != nil {
		return result(<-answered)
	}
	return result(<-answered)
}

// socketsDrained reports whether every TCP connection to addr on this
// machine has nothing left in flight: no bytes in the senders' send queues
// and none unread in the server's receive queues (/proc/net/tcp): then the
// node has read every byte it was sent.
func socketsDrained(t *testing.T, addr string) (bool, string) {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp to tell what the node read: %v", err)
	}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "01" { // ESTABLISHED only
			continue
		}
		tx, rx, _ := strings.Cut(f[4], ":")
		switch {
		case strings.HasSuffix(f[1], hexPort) && rx != "00000000":
			return false, fmt.Sprintf("the node has %s bytes (hex) unread on a connection", rx)
		case strings.HasSuffix(f[2], hexPort) && tx != "00000000":
			return false, fmt.Sprintf("a sender has %s bytes (hex) not yet taken by the node", tx)
		}
	}
	return true, ""
}

// TestIdleSocketsTimeOutAndAreCapped (finding 8): hundreds of idle
// keep-alive connections from one address: past the per-client cap they
// are refused at once; the node still answers status (from another
// address), a body that never comes is cut at the read timeout while a
// blocking query (a stream) outlives it, and the idle ones are closed
// after the idle timeout.
func TestIdleSocketsTimeOutAndAreCapped(t *testing.T) {
	const (
		capLoopback = 100
		sockets     = 300
	)
	logs := &lineCounter{}
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.Executor = executor.NewFake()
		c.Topics = []node.Topic{{Name: "t"}}
		c.MaxConnsLoopback = capLoopback
		c.HTTPIdleTimeout = 2 * time.Second
		c.HTTPHeaderTimeout = 2 * time.Second
		c.HTTPReadTimeout = time.Second
		c.HTTPWriteTimeout = time.Second
		c.LogEvery = time.Minute
		c.Logger = slog.New(logs)
	})
	nd := m.Nodes[0]
	addr := strings.TrimPrefix(nd.URL(), "http://")
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type idle struct {
		conn net.Conn
		r    *bufio.Reader
	}
	var open []idle
	refused := 0
	for i := range sockets {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: ourci\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			refused++ // closed at once (the refusal may arrive as a reset)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			open = append(open, idle{c, br})
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("socket %d: got %d, want 200 or 503", i, resp.StatusCode)
		}
	}
	if len(open) > capLoopback || refused < sockets-capLoopback {
		t.Errorf("%d sockets from 127.0.0.1: got %d served and %d refused, want at most %d served (the loopback cap)", sockets, len(open), refused, capLoopback)
	}
	if got := nd.HTTPRefused(); got < uint64(sockets-capLoopback) {
		t.Errorf("refused connections counted: got %d, want at least %d", got, sockets-capLoopback)
	}
	if got := logs.count("http: refused a connection"); got < 1 || got > 2 {
		t.Errorf("log lines about %d refused connections from one address: got %d, want 1 or 2 (throttled)", refused, got)
	}

	// Another address is not held up by the first one's sockets.
	other := api.NewClient("http://127.0.0.1:"+port, m.Secret.ClusterToken())
	other.HTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	if _, err := other.Status(ctx); err != nil {
		t.Fatalf("status from 127.0.0.2 while 127.0.0.1 holds %d idle sockets: %v", len(open), err)
	}

	// A request whose body never comes is cut at the read timeout.
	slow, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(slow, "POST /v1/spawn HTTP/1.1\r\nHost: ourci\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", m.Secret.ClusterToken())
	start := time.Now()
	if resp, err := http.ReadResponse(bufio.NewReader(slow), nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("a spawn whose body never came: got %d, want an error", resp.StatusCode)
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a spawn whose body never came was answered after %v, want about the read timeout (1s)", took)
	}

	// A blocking query streams: it outlives the read and write timeouts.
	res, err := other.Spawn(ctx, api.SpawnRequest{Topic: "t", Args: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := other.Job(ctx, res.Job, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := other.Job(ctx, res.Job, d.Index+1000, 2500*time.Millisecond); err != nil {
		t.Errorf("a blocking query of 2.5s with read and write timeouts of 1s: %v", err)
	} else if took := time.Since(start); took < 2*time.Second {
		t.Errorf("the blocking query returned after %v, want it to wait its 2.5s", took)
	}

	// The idle sockets are closed by the node after the idle timeout.
	closed := make(chan int, len(open))
	for i, s := range open {
		go func() {
			s.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := s.r.ReadByte(); err != nil && !isTimeout(err) {
				closed <- i
				return
			}
			closed <- -1
		}()
	}
	for range open {
		if i := <-closed; i < 0 {
			t.Fatalf("an idle socket was still open 20s after the idle timeout of 2s")
		}
	}
	nodetest.WaitFor(t, 10*time.Second, "the node's per-client count to fall back", func() (bool, string) {
		st, err := api.NewClient(nd.URL(), m.Secret.ClusterToken()).Status(ctx)
		return err == nil && st.Leader != "", fmt.Sprintf("status from 127.0.0.1: %v", err)
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// lineCounter is a slog.Handler that counts log lines by message.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (h *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.lines = append(h.lines, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }

// count is how many lines' messages contain s.
func (h *lineCounter) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestGarbageFloodLogsAreThrottled (finding 13): garbage UDP and TCP at the
// gossip port and plaintext at the peer port are counted one by one, but
// logged at most once per source per interval.
func TestGarbageFloodLogsAreThrottled(t *testing.T) {
	const (
		udpPackets = 2000
		tcpConns   = 100
		peerConns  = 200
	)
	logs := &lineCounter{}
	m := nodetest.Start(t, 1, func(i int, c *node.Config) {
		c.LogEvery = time.Minute
		c.Logger = slog.New(logs)
	})
	nd := m.Nodes[0]
	gossipBefore, peerBefore := nd.GossipBadPackets(), nd.PeerRefused()
	junk, _ := hex.DecodeString("01020304deadbeef00ff00ff00ff00ff00ff")

	u, err := net.Dial("udp", nd.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for range udpPackets {
		u.Write(junk)
	}
	flood := func(addr string, n int) {
		for range n {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(append(junk, bytes.Repeat([]byte("garbage\n"), 64)...))
			io.Copy(io.Discard, c) // until the node hangs up
			c.Close()
		}
	}
	flood(nd.GossipAddr(), tcpConns)
	flood(nd.PeerAddr(), peerConns)

	nodetest.WaitFor(t, 30*time.Second, "the node to count the garbage", func() (bool, string) {
		g, p := nd.GossipBadPackets()-gossipBefore, nd.PeerRefused()-peerBefore
		// UDP may drop packets under load; every TCP connection counts.
		return g >= tcpConns+udpPackets/4 && p >= peerConns, fmt.Sprintf("bad gossip %d, refused peer connections %d", g, p)
	})
	tok := m.Secret.ClusterToken()
	f := scrapeMetrics(t, nd, tok)
	for _, name := range []string{"ourci_gossip_bad_packets_total", "ourci_peer_refused_total"} {
		if mf, ok := f[name]; !ok || mf.GetMetric()[0].GetCounter().GetValue() == 0 {
			t.Errorf("metric %s: got %v, want it counted", name, mf)
		}
	}
	for _, tt := range []struct {
		what, line string
		max        int
	}{
		{"bad gossip from 127.0.0.1", "memberlist: bad gossip", 2},
		{"refused peer connections from 127.0.0.1", "peer port: refused a connection", 2},
	} {
		if got := logs.count(tt.line); got < 1 || got > tt.max {
			t.Errorf("log lines about %s: got %d, want 1 to %d", tt.what, got, tt.max)
		}
	}
	if got := logs.count("memberlist"); got > 10 {
		t.Errorf("memberlist log lines in all: got %d, want a handful", got)
	}
}
