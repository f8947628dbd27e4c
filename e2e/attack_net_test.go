package e2e

// The network attacks of issue 15 on real ourci-node processes:
//
//   - (4) a replayed webhook (an old signed body with a new delivery ID)
//     opens nothing and never supersedes the pull request's current job;
//   - (5) unsigned webhook bodies of 24 MiB, many at once, to the leader and
//     to a follower, do not grow either process's memory past the cap;
//   - (8) hundreds of idle sockets from one address are capped and closed
//     after the idle timeout, and the node answers status meanwhile.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/github/githubtest"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// attackCIScript is the root task of the attack suite's jobs: it waits for
// RELEASE/go (at most about three minutes), so a job stays open while the
// test replays its deliveries.
const attackCIScript = `set -eu
rel=$(cat release-dir)
i=0; while [ ! -e "$rel/go" ]; do i=$((i+1)); if [ $i -gt 1800 ]; then exit 3; fi; sleep 0.1; done
echo released
`

// attackRepo makes REPOS/octo/fw.git with n commits on branch feature, each
// carrying ci.sh, and returns their SHAs, oldest first.
func attackRepo(t *testing.T, repos, release string, n int) []string {
	t.Helper()
	bare := filepath.Join(repos, gheOwner, gheRepo+".git")
	work := filepath.Join(t.TempDir(), "work")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", work, "-c", "user.name=Alice", "-c", "user.email=" + gheAuthor}, args...)...)
		cmd.Env = append(cleanEnv(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, d := range []string{bare, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "--bare", bare)
	git("init", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(work, "ci.sh"), []byte(attackCIScript), 0o644)
	os.WriteFile(filepath.Join(work, "release-dir"), []byte(release+"\n"), 0o644)
	var shas []string
	for i := range n {
		os.WriteFile(filepath.Join(work, "version"), []byte(strconv.Itoa(i)+"\n"), 0o644)
		git("add", ".")
		git("commit", "-qm", fmt.Sprintf("version %d", i))
		shas = append(shas, git("rev-parse", "HEAD"))
	}
	git("push", "-q", bare, "feature")
	return shas
}

// attackJob is the part of `status --json JOB` the suite reads.
type attackJob struct {
	Job struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		Reason    string `json:"reason"`
		Successor string `json:"superseded_by"`
	} `json:"job"`
}

// TestAttackWebhooksOnRealNodes replays findings 4 and 5 on a mesh of three.
func TestAttackWebhooksOnRealNodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repos, release := filepath.Join(dir, "repos"), filepath.Join(dir, "release")
	os.MkdirAll(release, 0o755)
	sha := attackRepo(t, repos, release, 3)
	a, b, c := sha[0], sha[1], sha[2]
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(gheSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const capMiB = 32
	var specs []nodeSpec
	for i := 1; i <= 3; i++ {
		specs = append(specs, nodeSpec{Name: fmt.Sprintf("node%d", i), Topics: []string{gheTopic}})
	}
	m := gheStartMesh(t, specs, []string{
		"--github-secret-file", secretFile, "--github-clone-url", filepath.Join(repos, "{owner}", "{repo}.git"),
		"--github-topic", gheTopic, "--github-command", "sh ci.sh", "--webhook-inflight", fmt.Sprintf("%dm", capMiB),
	})
	t.Cleanup(func() { os.WriteFile(filepath.Join(release, "go"), nil, 0o644) }) // before the nodes stop
	leader, follower := attackRoles(t, m)
	secret := []byte(gheSecret)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pr := func(at time.Duration, action, head string) []byte {
		return githubtest.PullRequestAt(t0.Add(at), action, gheOwner, gheRepo, 1, head, "feature", false)
	}
	job := func(id string) attackJob {
		t.Helper()
		j, err := jobStatusAs[attackJob](t, m, leader, id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	// (4) Two real pushes: the second supersedes the first.
	opened, pushB := pr(0, "opened", a), pr(time.Minute, "synchronize", b)
	code, j1, _ := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", githubtest.NewDelivery(), opened)
	if code != http.StatusCreated {
		t.Fatalf("opened at A: got %d, want 201", code)
	}
	code, j2, _ := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", githubtest.NewDelivery(), pushB)
	if code != http.StatusCreated || j2 == j1 {
		t.Fatalf("synchronize to B: got %d job %q, want 201 and a new job", code, j2)
	}
	wait.For(t, 60*time.Second, "job 1 superseded by job 2 at A", func() (bool, string) {
		j := job(j1)
		return j.Job.Reason == "superseded" && j.Job.Successor == j2, fmt.Sprintf("job at A: %+v", j.Job)
	})
	jobs := gheJobCount(t, m, leader)
	// The attacker resends what it saw, with new delivery IDs, to every node.
	for _, tt := range []struct {
		what    string
		body    []byte
		wantJob string
	}{
		{"the opened body at A", opened, j1},
		{"the synchronize body at B", pushB, j2},
		{"a signed synchronize at A, updated before B, never delivered", pr(30*time.Second, "synchronize", a), ""},
	} {
		for i := range m.nodes {
			code, got, _ := gheDeliver(t, m.nodes[i].url, secret, "pull_request", githubtest.NewDelivery(), tt.body)
			if code != http.StatusOK || got != tt.wantJob {
				t.Errorf("replay of %s to %s: got %d job %q, want 200 and job %q", tt.what, m.nodes[i].spec.Name, code, got, tt.wantJob)
			}
		}
	}
	if j := job(j2); j.Job.State != "open" || j.Job.Successor != "" {
		t.Fatalf("the current job after the replays: got %+v, want it open", j.Job)
	}
	if n := gheJobCount(t, m, leader); n != jobs {
		t.Errorf("jobs after the replays: got %d, want %d", n, jobs)
	}

	// (5) Unsigned 24 MiB bodies, ten to the leader and ten to a follower,
	// all in flight at once.
	const size, each = 24 << 20, 10
	body := bytes.Repeat([]byte{'{'}, size)
	fakeSig := "sha256=" + strings.Repeat("00", 32)
	targets := []int{leader, follower}
	rssBefore := map[int]int64{}
	for _, i := range targets {
		rssBefore[i] = rssOf(t, m.nodes[i].cmd.Process.Pid)
	}
	var (
		wg      sync.WaitGroup
		settled atomic.Int32
		hold    = make(chan struct{})
		codes   = make([]int, 2*each)
	)
	for k := range 2 * each {
		addr := m.nodes[targets[k%2]].http
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[k], _ = holdPost(addr, body, fakeSig, &settled, hold)
		}()
	}
	ports := []string{m.nodes[leader].http, m.nodes[follower].http, m.nodes[leader].raft}
	wait.For(t, 120*time.Second, "every sender settled and the ports drained", func() (bool, string) {
		if n := settled.Load(); n < 2*each {
			return false, fmt.Sprintf("%d of %d senders hold their last byte or were answered", n, 2*each)
		}
		return tcpDrained(t, ports)
	})
	for _, i := range targets {
		grew := rssOf(t, m.nodes[i].cmd.Process.Pid) - rssBefore[i]
		t.Logf("%s: resident memory grew %d MiB with %d unsigned bodies of %d MiB in flight", m.nodes[i].spec.Name, grew>>20, 2*each, size>>20)
		// Resident memory is not live heap: Go lets the heap reach twice
		// its live bytes before it collects, and a growing buffer leaves
		// its smaller copies behind, so allow five times the cap. Without
		// the cap the bodies in flight are 480 MiB: each node grew by
		// about 400 MiB.
		if limit := int64(5*capMiB) << 20; grew > limit {
			t.Errorf("%s: resident memory grew %d MiB, want at most %d MiB (5x the cap of %d MiB)", m.nodes[i].spec.Name, grew>>20, limit>>20, capMiB)
		}
	}
	close(hold)
	wg.Wait()
	busy := 0
	for _, code := range codes {
		if code == http.StatusServiceUnavailable {
			busy++
		} else if code != http.StatusUnauthorized && code != 0 {
			t.Errorf("an unsigned body: got %d, want 401 or 503", code)
		}
	}
	if busy == 0 {
		t.Errorf("no unsigned body was answered 503: %v", codes)
	}
	// A real push still gets through, and supersedes B.
	wait.For(t, 30*time.Second, "a signed delivery accepted after the flood", func() (bool, string) {
		code, j3, _ := gheDeliver(t, m.nodes[follower].url, secret, "pull_request", "real-after-flood", pr(2*time.Minute, "synchronize", c))
		return code == http.StatusCreated || code == http.StatusOK && j3 != "", fmt.Sprintf("signed delivery after the flood: %d", code)
	})
	wait.For(t, 60*time.Second, "job 2 superseded at B", func() (bool, string) {
		j := job(j2)
		return j.Job.Reason == "superseded", fmt.Sprintf("job at B after the push to C: %+v", j.Job)
	})
}

// attackRoles is the leader's index and a follower's.
func attackRoles(t *testing.T, m *mesh) (leader, follower int) {
	t.Helper()
	st, err := m.meshStatus(t, 0)
	if err != nil {
		t.Fatal(err)
	}
	leader, follower = -1, -1
	for i, n := range m.nodes {
		if n.spec.Name == st.Leader {
			leader = i
		} else if follower < 0 {
			follower = i
		}
	}
	if leader < 0 {
		t.Fatalf("leader %q is none of the nodes", st.Leader)
	}
	return leader, follower
}

// rssOf is a process's resident memory (VmRSS).
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read memory from: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// holdPost posts body as an unsigned-in-effect webhook over a raw
// connection: all of it but the last byte, then (settled counted) the last
// once hold is closed; an answer that comes first ends it.
func holdPost(addr string, body []byte, sig string, settled *atomic.Int32, hold <-chan struct{}) (int, error) {
	var once sync.Once
	settle := func() { once.Do(func() { settled.Add(1) }) }
	defer settle()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	fmt.Fprintf(conn, "POST /webhook/github HTTP/1.1\r\nHost: ourci\r\nContent-Type: application/json\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: %s\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n", githubtest.NewDelivery(), sig, len(body))
	answered := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	const chunk = 256 << 10
	for off := 0; off < len(body)-1; off += chunk {
		select {
		case code := <-answered:
			return code, nil
		default:
		}
		if _, err := conn.Write(body[off:min(off+chunk, len(body)-1)]); err != nil {
			settle()
			return <-answered, err
		}
	}
	settle()
	select {
	case code := <-answered:
		return code, nil
	case <-hold:
	}
	conn.Write(body[len(body)-1:])
	return <-answered, nil
}

// tcpDrained reports whether the TCP connections to these addresses have
// nothing in flight: no bytes in the senders' send queues, none unread in
// the receivers' (/proc/net/tcp): every byte sent was read by its node.
func tcpDrained(t *testing.T, addrs []string) (bool, string) {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	var ports []string
	for _, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		n, _ := strconv.Atoi(p)
		ports = append(ports, fmt.Sprintf(":%04X", n))
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "01" {
			continue
		}
		tx, rx, _ := strings.Cut(f[4], ":")
		for _, p := range ports {
			if strings.HasSuffix(f[1], p) && rx != "00000000" {
				return false, fmt.Sprintf("%s bytes (hex) unread at a node's port %s", rx, p)
			}
			if strings.HasSuffix(f[2], p) && tx != "00000000" {
				return false, fmt.Sprintf("%s bytes (hex) not yet taken by the node at port %s", tx, p)
			}
		}
	}
	return true, ""
}

// fdCount is how many file descriptors a process holds.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc to count descriptors: %v", err)
	}
	return len(ents)
}

// TestAttackIdleSocketsOnRealNodes replays finding 8: 400 idle keep-alive
// sockets from 127.0.0.1 to one node of three.
func TestAttackIdleSocketsOnRealNodes(t *testing.T) {
	t.Parallel()
	const (
		capLoopback = 100
		sockets     = 400
		idle        = 3 * time.Second
	)
	var specs []nodeSpec
	for i := 1; i <= 3; i++ {
		specs = append(specs, nodeSpec{Name: fmt.Sprintf("node%d", i), Topics: []string{"t"},
			Flags: []string{"--http-idle-timeout", idle.String(), "--max-conns-loopback", strconv.Itoa(capLoopback)}})
	}
	m := startMesh(t, specs)
	target := m.nodes[0]
	pid := target.cmd.Process.Pid
	fdsBefore := fdCount(t, pid)

	var open []*bufio.Reader
	var conns []net.Conn
	refused := 0
	for i := range sockets {
		c, err := net.DialTimeout("tcp", target.http, 5*time.Second)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: ourci\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			refused++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			refused++
			continue
		}
		open, conns = append(open, br), append(conns, c)
	}
	fds := fdCount(t, pid)
	t.Logf("%d sockets: %d held open, %d refused; the node holds %d descriptors (%d before)", sockets, len(open), refused, fds, fdsBefore)
	if len(open) > capLoopback || refused < sockets-capLoopback {
		t.Errorf("%d sockets from 127.0.0.1: got %d served and %d refused, want at most %d served", sockets, len(open), refused, capLoopback)
	}
	if fds > fdsBefore+capLoopback+50 {
		t.Errorf("descriptors of %s: got %d, want at most %d (before, the cap and slack)", target.spec.Name, fds, fdsBefore+capLoopback+50)
	}

	// The node answers status: to the CLI through another node (it asks
	// this one nothing, the ledger is replicated), and to a client of
	// another address directly.
	if r := m.runTimeout(t, 1, 20*time.Second, "status"); r.code != 0 {
		t.Errorf("status through %s: %v", m.nodes[1].spec.Name, r)
	}
	other := api.NewClient(target.url, attackToken(t, m))
	other.HTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if st, err := other.Status(ctx); err != nil || st.Leader == "" {
		t.Errorf("status from 127.0.0.2 while 127.0.0.1 holds %d idle sockets: %+v, %v", len(open), st.Leader, err)
	}

	// The idle ones are closed after the idle timeout; then the CLI on
	// this machine gets in again.
	closed := make(chan bool, len(open))
	for i, br := range open {
		go func() {
			conns[i].SetReadDeadline(time.Now().Add(idle + 20*time.Second))
			_, err := br.ReadByte()
			ne, timeout := err.(net.Error)
			closed <- err != nil && !(timeout && ne.Timeout())
		}()
	}
	for range open {
		if !<-closed {
			t.Fatalf("an idle socket was still open 20s past the idle timeout of %v", idle)
		}
	}
	wait.For(t, 20*time.Second, "status to answer after the sockets closed", func() (bool, string) {
		r := m.runTimeout(t, 0, 20*time.Second, "status")
		return r.code == 0, fmt.Sprintf("status on %s after the sockets closed: %v", target.spec.Name, r)
	})
	if n := strings.Count(readFile(t, target.logPath), "http: refused a connection"); n < 1 || n > 3 {
		t.Errorf("log lines about %d refused connections: got %d, want 1 to 3 (throttled)", refused, n)
	}
}

// attackToken is `ourci-node token` for the mesh's secret.
func attackToken(t *testing.T, m *mesh) string {
	t.Helper()
	out, err := exec.Command(binPath, "token", "--secret-file", m.secretFile).Output()
	if err != nil {
		t.Fatalf("ourci-node token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
