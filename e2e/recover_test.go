package e2e

// Operations on real processes (docs/OPERATIONS.md): a node refuses a
// damaged data directory, or one in use, with a message and a way out;
// the way out for a lone node (a new mesh, then a restore of a saved
// snapshot file); and the recovery of a mesh that lost its quorum for
// good (operator raft recover on the survivor).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// cliRun runs the binary with args within timeout and returns what it did;
// running past the timeout fails the test.
func cliRun(t *testing.T, timeout time.Duration, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("ourci-node %s: still running after %v; stdout %q stderr %q", strings.Join(args, " "), timeout, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ourci-node %s: %v", strings.Join(args, " "), err)
	}
	return r, took
}

// joinArgs are node i's join flags with another data directory and, with
// ports set, other ports.
func (m *mesh) joinArgs(i int, dataDir string, ports []int) []string {
	n := m.nodes[i]
	gossip, raft, http := n.gossip, n.raft, n.http
	if ports != nil {
		gossip, raft, http = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	}
	args := []string{"join", "--name", n.spec.Name, "--data-dir", dataDir, "--bind", gossip, "--raft", raft, "--http", http, "--secret-file", m.secretFile}
	for _, topic := range n.spec.Topics {
		args = append(args, "--topic", topic)
	}
	return args
}

// operator runs `ourci-node operator VERB WORD ARGS...` against node 0.
func (m *mesh) operator(t *testing.T, verb, word string, args ...string) result {
	t.Helper()
	r, _ := cliRun(t, time.Minute, append([]string{"operator", verb, word, "--node", m.nodes[0].url, "--secret-file", m.secretFile}, args...)...)
	return r
}

// copyTree copies a data directory.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// noPanic fails the test if out shows a Go panic or a goroutine dump.
func noPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "raftfsm:", "runtime."} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: got %q in its output, want a message for people:\n%s", what, bad, out)
		}
	}
}

// TestDamagedDataDir: `ourci-node join` on a damaged data directory exits 7
// at once with a message naming the file and the way out, never a panic;
// a second node on a directory in use fails within seconds, naming it; and
// the way out for a lone node works: a new mesh on an empty directory,
// then `operator snapshot restore` of a file `operator snapshot save` made.
func TestDamagedDataDir(t *testing.T) {
	m := startMesh(t, []nodeSpec{{Name: "solo", Topics: []string{"t"}}})
	var jobs []string
	for i := range 3 {
		r := m.runTimeout(t, 0, time.Minute, "spawn", "--json", "--wait", "-t", "t", "--", fmt.Sprintf("echo job %d", i))
		var out struct{ Job string }
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Job == "" {
			t.Fatalf("spawn --wait: %v", r)
		}
		jobs = append(jobs, out.Job)
	}
	backup := filepath.Join(m.dir, "ledger.snap")
	r := m.operator(t, "snapshot", "save", "--json", backup)
	var saved struct {
		SchemaVersion int    `json:"schema_version"`
		Index         uint64 `json:"index"`
		Size          int64  `json:"size"`
		SHA256        string `json:"sha256"`
		Jobs          int    `json:"jobs"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &saved) != nil {
		t.Fatalf("operator snapshot save --json: %v", r)
	}
	if fi, err := os.Stat(backup); err != nil || saved.SchemaVersion != 1 || saved.Index == 0 || saved.Jobs != 3 || saved.Size != fi.Size() || len(saved.SHA256) != 64 {
		t.Fatalf("operator snapshot save --json: got %+v (file: %v), want schema 1, an index, 3 jobs, the file's size and sha256", saved, err)
	}

	dataDir := filepath.Join(m.dir, "solo.data")
	// A second node on the directory while the first runs.
	args := m.joinArgs(0, dataDir, freePorts(t, 1))
	r, took := cliRun(t, 30*time.Second, args...)
	if out := r.stdout + r.stderr; r.code != exitCodeError || !strings.Contains(out, "data directory "+dataDir+" is in use") || took > 5*time.Second {
		t.Errorf("a second join on %s in use: got exit %d after %v, output %q; want exit %d within seconds, naming the directory", dataDir, r.code, took.Round(time.Millisecond), out, exitCodeError)
	}
	noPanic(t, "join on a directory in use", r.stdout+r.stderr)
	t.Logf("a second join on the directory said (after %v):\n%s", took.Round(time.Millisecond), r.stdout+r.stderr)
	m.stop(t)

	raftDB := func(dir string) string { return filepath.Join(dir, "raft.db") }
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		detail string
	}{
		{"truncated to its meta pages", func(t *testing.T, dir string) {
			if err := os.Truncate(raftDB(dir), 8192); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"every page but the meta pages overwritten with garbage", func(t *testing.T, dir string) {
			fi, err := os.Stat(raftDB(dir))
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, fi.Size()-8192)
			for i := range junk {
				junk[i] = byte(i*7 + i/13)
			}
			overwriteAt(t, raftDB(dir), 8192, junk)
		}, "garbage"},
		{"both meta pages zeroed", func(t *testing.T, dir string) { overwriteAt(t, raftDB(dir), 0, make([]byte, 8192)) }, "neither meta page"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			copyTree(t, dataDir, dir)
			tt.damage(t, dir)
			r, _ := cliRun(t, 30*time.Second, m.joinArgs(0, dir, nil)...)
			out := r.stdout + r.stderr
			t.Logf("join on the damaged directory said:\n%s", out)
			if r.code != exitCodeError {
				t.Errorf("join: got exit %d, want %d; output:\n%s", r.code, exitCodeError, out)
			}
			for _, want := range []string{"this node's data is damaged: " + raftDB(dir), tt.detail, "mv " + dir + " " + dir + ".damaged", "--peer", "ourci-node operator snapshot restore FILE"} {
				if !strings.Contains(out, want) {
					t.Errorf("join: got output\n%s\nwant it to say %q", out, want)
				}
			}
			noPanic(t, "join on a damaged directory", out)
		})
	}

	// The way out when no other member holds the ledger: an empty data
	// directory (the secret kept), a new mesh, the saved file restored.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	m.startNode(t, 0)
	wait.For(t, 30*time.Second, "the restarted mesh to be ready", m.ready(t))
	r = m.operator(t, "snapshot", "restore", backup)
	if r.code != 0 || !strings.Contains(r.stdout, "restored the ledger saved at") {
		t.Fatalf("operator snapshot restore: %v", r)
	}
	for _, id := range jobs {
		r := m.run(t, "status", "--json", id)
		var j jobView
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || j.Job.Status != "passed" {
			t.Errorf("status %s after the restore: got %v, want the job, passed", id, r)
		}
	}
	// A damaged file is refused, and says so.
	bad := filepath.Join(m.dir, "bad.snap")
	b, _ := os.ReadFile(backup)
	b[len(b)-5] ^= 0xff
	os.WriteFile(bad, b, 0o600)
	r = m.operator(t, "snapshot", "restore", bad)
	if r.code != exitCodeError || !strings.Contains(r.stderr, bad+" cannot be restored: the file is damaged") || !strings.Contains(r.stderr, "Nothing was changed.") {
		t.Errorf("restore of a damaged file: got %v, want exit %d saying it is damaged and nothing changed", r, exitCodeError)
	}
	noPanic(t, "restore of a damaged file", r.stderr)
}

// exitCodeError is the CLI's exit code for other errors (common.go).
const exitCodeError = 7

func overwriteAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// recoverIPBase gives the recovery scenario addresses of its own, above
// the fault suite's (faultIPBase), spread over concurrent test processes.
func recoverIPBase() int { return 226 + 3*(os.Getpid()%9) }

// stopNode sends SIGTERM to node i of a fault mesh and waits until it
// exited (SIGKILL after 20 s).
func (m *faultMesh) stopNode(t *testing.T, i int) {
	t.Helper()
	n := m.nodes[i]
	n.mu.Lock()
	if !n.up {
		n.mu.Unlock()
		return
	}
	cmd, exited := n.cmd, n.exited
	n.up = false
	n.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not exit within 20s of SIGTERM; killing it", n.name)
		cmd.Process.Kill()
		<-exited
	}
}

// TestQuorumLossRecovery is docs/OPERATIONS.md's recovery of a mesh that
// lost its quorum for good, on real processes: of three nodes, two are
// killed and their data directories deleted; the survivor has no leader
// and refuses writes; stopped, `operator raft recover` makes it the only
// voter; started again it leads with every job and blob, runs new work,
// and a brand-new node joins it.
func TestQuorumLossRecovery(t *testing.T) {
	m := newFaultMesh(t, faultMeshOpts{nodes: 3, slots: 2, ipBase: recoverIPBase()})
	ctx := context.Background()
	const s = 0 // the survivor
	survivor := m.nodes[s]
	waitJob := func(i int, id, what string) {
		t.Helper()
		if err := faultPoll(60*time.Second, 100*time.Millisecond, func() (bool, string) {
			j, err := m.job(ctx, i, id)
			if err != nil {
				return false, err.Error()
			}
			return j.Job.State == "closed", fmt.Sprintf("job %s is %s", id, j.Job.State)
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if j, _ := m.job(ctx, i, id); j.Job.Status != "passed" {
			t.Fatalf("%s: job %s got status %s, want passed", what, id, j.Job.Status)
		}
	}
	var jobs []string
	for i := range 4 {
		id, _, err := m.cliSpawn(ctx, i%3, m.leafCmd(fmt.Sprintf("before%d", i), 0.1))
		if err != nil {
			t.Fatal(err)
		}
		waitJob(i%3, id, "a job before the loss")
		jobs = append(jobs, id)
	}
	blobFile := filepath.Join(m.dir, "artifact")
	content := []byte("an artifact that must outlive the loss of two nodes\n")
	if err := os.WriteFile(blobFile, content, 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := cliRun(t, 30*time.Second, "blob", "put", "--node", survivor.url, "--secret-file", m.secretFile, blobFile)
	ref := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(ref, "sha256:") {
		t.Fatalf("blob put through %s: %v", survivor.name, r)
	}
	// Every replica holds the same ledger before the loss, with nothing
	// left to record: the artifact and the four tasks' sealed logs on two
	// holders each (a late seal or copy would move the ledger on).
	if err := faultPoll(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := m.status(ctx, s)
		if err != nil {
			return false, err.Error()
		}
		var blobs, logs int64
		for _, mb := range st.Members {
			blobs, logs = blobs+mb.Blobs, logs+mb.Logs
		}
		if blobs != 2 || logs != 2*int64(len(jobs)) {
			return false, fmt.Sprintf("copies held: %d of the artifact, %d of sealed logs; want 2 and %d", blobs, logs, 2*len(jobs))
		}
		var hashes []string
		for i := range m.nodes {
			l, err := m.ledger(ctx, i)
			if err != nil {
				return false, err.Error()
			}
			hashes = append(hashes, l.Hash)
		}
		return hashes[0] == hashes[1] && hashes[1] == hashes[2], fmt.Sprintf("ledger hashes %v", hashes)
	}); err != nil {
		t.Fatal(err)
	}
	before, err := m.ledger(ctx, s)
	if err != nil {
		t.Fatal(err)
	}

	// Two nodes lost for good.
	for _, i := range m.others(s) {
		m.kill(i)
		if err := os.RemoveAll(m.nodes[i].dataDir); err != nil {
			t.Fatal(err)
		}
	}
	if err := faultPoll(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := m.status(ctx, s)
		return err == nil && st.Leader == "", fmt.Sprintf("%s sees leader %q (%v)", survivor.name, st.Leader, err)
	}); err != nil {
		t.Fatalf("the survivor alone: %v", err)
	}
	r, _ = cliRun(t, time.Minute, "spawn", "--node", survivor.url, "--secret-file", m.secretFile, "-t", faultTopic, "--", "true")
	if r.code != 3 {
		t.Errorf("spawn on the survivor without a quorum: got %v, want exit 3 (no leader)", r)
	}
	// Recover refuses while the node runs, and names what is wrong.
	recoverArgs := []string{"operator", "raft", "recover", "--data-dir", survivor.dataDir, "--name", survivor.name}
	r, _ = cliRun(t, 30*time.Second, recoverArgs...)
	if r.code != exitCodeError || !strings.Contains(r.stderr, "the node is running on "+survivor.dataDir) {
		t.Errorf("recover on the running node: got %v, want exit %d saying it runs", r, exitCodeError)
	}
	m.stopNode(t, s)
	r, _ = cliRun(t, 30*time.Second, append(recoverArgs, "--voter", "n9")...)
	if r.code != 2 || !strings.Contains(r.stderr, `no server "n9"`) || !strings.Contains(r.stderr, "Nothing was changed.") {
		t.Errorf("recover with an unknown voter: got %v, want exit 2 naming it", r)
	}
	noPanic(t, "recover with an unknown voter", r.stderr)

	r, _ = cliRun(t, 30*time.Second, append(recoverArgs, "--json")...)
	var rec struct {
		SchemaVersion int `json:"schema_version"`
		Node          string
		Before, After []struct {
			ID      string `json:"id"`
			Address string `json:"address"`
			Voter   bool   `json:"voter"`
		}
		Index uint64
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rec) != nil {
		t.Fatalf("operator raft recover --json: %v", r)
	}
	if rec.SchemaVersion != 1 || len(rec.Before) != 3 || len(rec.After) != 1 || !rec.After[0].Voter || rec.After[0].Address != survivor.raft ||
		(rec.After[0].ID != survivor.name && !strings.HasPrefix(rec.After[0].ID, survivor.name+"@")) || rec.Node != rec.After[0].ID {
		t.Fatalf("operator raft recover --json: got %+v, want 3 servers before, %s alone after, a voter at %s", rec, survivor.name, survivor.raft)
	}

	// Started again, the survivor leads.
	if err := m.start(s, nil); err != nil {
		t.Fatal(err)
	}
	if err := faultPoll(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := m.status(ctx, s)
		return err == nil && st.Leader == survivor.name, fmt.Sprintf("%s sees leader %q (%v)", survivor.name, st.Leader, err)
	}); err != nil {
		t.Fatalf("the recovered survivor: %v", err)
	}
	if l, err := m.ledger(ctx, s); err != nil || l.Hash != before.Hash {
		t.Errorf("the recovered ledger: got %+v (%v), want hash %s", l, err, before.Hash)
	}
	for _, id := range jobs {
		waitJob(s, id, "a job from before the loss")
	}
	got := filepath.Join(m.dir, "artifact.back")
	r, _ = cliRun(t, 30*time.Second, "blob", "get", "--node", survivor.url, "--secret-file", m.secretFile, ref, "-o", got)
	if b, err := os.ReadFile(got); r.code != 0 || err != nil || !bytes.Equal(b, content) {
		t.Errorf("blob get %s after the recovery: got %v, file %q (%v); want the artifact", ref, r, b, err)
	}
	id, _, err := m.cliSpawn(ctx, s, m.leafCmd("after", 0.1))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(s, id, "a job after the recovery")

	// A brand-new node joins the recovered mesh (where a lost node lived,
	// on new ports and an empty data directory).
	ip := m.nodes[1].ip
	ports := faultFreePorts(t, ip)
	fresh := &faultNode{
		name: "n4", ip: ip,
		gossip: fmt.Sprintf("%s:%d", ip, ports[0]), raft: fmt.Sprintf("%s:%d", ip, ports[1]), httpAddr: fmt.Sprintf("%s:%d", ip, ports[2]),
		url: fmt.Sprintf("http://%s:%d", ip, ports[2]), dataDir: filepath.Join(m.dir, "n4.data"), logPath: filepath.Join(m.dir, "n4.log"),
	}
	m.nodes = append(m.nodes, fresh)
	if err := m.start(3, []string{survivor.gossip}); err != nil {
		t.Fatal(err)
	}
	if err := m.pollHealthy([]int{s, 3}, 60*time.Second); err != nil {
		t.Fatalf("the new node in the recovered mesh: %v", err)
	}
	id, _, err = m.cliSpawn(ctx, 3, m.leafCmd("new-node", 0.1))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(3, id, "a job through the new node")
	if err := faultPoll(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		a, err1 := m.ledger(ctx, s)
		b, err2 := m.ledger(ctx, 3)
		return err1 == nil && err2 == nil && a.Hash == b.Hash, fmt.Sprintf("ledgers %+v %+v (%v %v)", a, b, err1, err2)
	}); err != nil {
		t.Errorf("the new node's ledger: %v", err)
	}
}
