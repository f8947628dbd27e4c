package e2e

// The fault suite's mesh: real ourci-node processes, each on its own
// 127.0.0.x address (so that the partition scenario can cut one node off by
// address), that a test can kill -9 and restart on their data directories.
// Everything here is safe to call from any goroutine and never calls
// t.Fatal; the scenarios in fault_test.go decide what is fatal.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// faultTopic is the topic every node of a fault mesh subscribes to.
const faultTopic = "work"

// faultNode is one ourci-node process of a fault mesh, across its lives.
type faultNode struct {
	name, ip               string
	gossip, raft, httpAddr string // IP:PORT
	url                    string // http://IP:PORT
	dataDir, logPath       string
	gid                    uint32 // the process's group (partition rules match it); 0 keeps the test's
	mu                     sync.Mutex
	cmd                    *exec.Cmd
	exited                 chan struct{}
	waitErr                error
	up                     bool
	lives                  int
	killedAt               []int64 // unix nanos, taken once a killed (or cleanly stopped) process has been reaped
	stopSentAt             []int64 // unix nanos: when a clean stop sent SIGTERM (stop, chaos_mesh_test.go)
	paused                 bool    // SIGSTOPped by the test (chaos_mesh_test.go)
	tmpfs                  bool    // dataDir is a tmpfs of its own (faultMeshOpts.tmpfsMiB)
	bin                    string  // the ourci-node binary its next life runs; "" is binPath
}

// faultMesh is a 3-node (or n-node) mesh for one fault scenario.
type faultMesh struct {
	t           *testing.T
	dir         string
	secretFile  string
	token       string
	slots       int
	maxAttempts int
	nodes       []*faultNode
	client      *http.Client

	// Files the tasks write: every execution's start and end (runLog), the
	// child spawns root tasks made (spawnLog), and the spawn CLI's errors.
	runLog, spawnLog, spawnErr string
	taskScript, rootScript     string
	// More files keepArtifacts saves (a scenario's own logs); set before
	// the scenario starts work.
	artifacts []string
}

type faultMeshOpts struct {
	nodes       int
	slots       int
	maxAttempts int    // 0: the daemon's default (3)
	ipPrefix    string // the first three octets of the nodes' addresses; "" is 127.0.0
	ipBase      int    // node i binds ipPrefix.(ipBase+i+1)
	groups      bool   // run each node with its own group ID, faultGID(ip), for owner-matched partition rules
	// spare nodes are made (names, addresses, data dirs) but not started:
	// a scenario adds them to the mesh later with start. They follow the
	// first nodes in m.nodes and are never up until then.
	spare int
	// tmpfsMiB puts node i's data dir on a tmpfs of its own of that many
	// MiB (root only), so that a scenario can fill it. A mount that fails
	// is logged and leaves the node on the ordinary disk (faultNode.tmpfs
	// false).
	tmpfsMiB map[int]int
	// bin is the ourci-node binary the nodes start with ("" is binPath);
	// a scenario may change a node's (faultNode.bin) before restarting it.
	bin string
}

// safePath matches the paths the task scripts embed unquoted.
var safePath = regexp.MustCompile(`^[A-Za-z0-9/_.+-]+$`)

// newFaultMesh starts the mesh: the first node founds it, the others join it,
// and it returns once every node lists every member alive with topic work and
// they agree on a leader. Processes are SIGKILLed and reaped, and leftover
// task processes killed, by t.Cleanup; on failure every node's log tail is
// printed.
func newFaultMesh(t *testing.T, o faultMeshOpts) *faultMesh {
	t.Helper()
	meshSlots <- struct{}{}
	t.Cleanup(func() { <-meshSlots })
	m := &faultMesh{t: t, dir: t.TempDir(), slots: o.slots, maxAttempts: o.maxAttempts,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	if !safePath.MatchString(m.dir) {
		t.Fatalf("temp dir %q has characters the task scripts cannot embed", m.dir)
	}
	m.secretFile = filepath.Join(m.dir, "secret")
	out, err := exec.Command(binPath, "keygen").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("ourci-node keygen: %v, output %q", err, out)
	}
	if err := os.WriteFile(m.secretFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := exec.Command(binPath, "token", "--secret-file", m.secretFile).Output()
	if err != nil || len(bytes.TrimSpace(tok)) == 0 {
		t.Fatalf("ourci-node token: %v, output %q", err, tok)
	}
	m.token = string(bytes.TrimSpace(tok))
	m.writeScripts(t)

	if o.ipPrefix == "" {
		o.ipPrefix = "127.0.0"
	}
	for i := 0; i < o.nodes+o.spare; i++ {
		ip := fmt.Sprintf("%s.%d", o.ipPrefix, o.ipBase+i+1)
		ports := faultFreePorts(t, ip)
		name := fmt.Sprintf("n%d", i+1)
		n := &faultNode{
			name: name, ip: ip,
			gossip:   net.JoinHostPort(ip, strconv.Itoa(ports[0])),
			raft:     net.JoinHostPort(ip, strconv.Itoa(ports[1])),
			httpAddr: net.JoinHostPort(ip, strconv.Itoa(ports[2])),
			url:      "http://" + net.JoinHostPort(ip, strconv.Itoa(ports[2])),
			dataDir:  filepath.Join(m.dir, name+".data"),
			logPath:  filepath.Join(m.dir, name+".log"),
			bin:      o.bin,
		}
		if o.groups {
			n.gid = faultGID(ip)
		}
		m.nodes = append(m.nodes, n)
	}
	for i, mib := range o.tmpfsMiB {
		m.mountTmpfs(t, i, mib) // its unmount runs after the cleanups below
	}
	// Cleanups run last-registered first: kill the nodes, then their orphaned
	// task processes, then show the logs.
	t.Cleanup(func() {
		if t.Failed() {
			m.keepArtifacts(t)
			for _, n := range m.nodes {
				t.Logf("---- last lines of %s's log (%s) ----\n%s", n.name, n.logPath, tail(n.logPath, 80))
			}
			t.Logf("---- last lines of RUNLOG (%s) ----\n%s", m.runLog, tail(m.runLog, 40))
			t.Logf("---- spawn CLI errors inside tasks (%s) ----\n%s", m.spawnErr, tail(m.spawnErr, 20))
		}
	})
	t.Cleanup(m.killOrphans)
	t.Cleanup(func() {
		for i := range m.nodes {
			m.kill(i)
		}
	})

	if err := m.start(0, nil); err != nil {
		t.Fatal(err)
	}
	if err := faultPoll(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := m.status(context.Background(), 0)
		if err != nil {
			return false, err.Error()
		}
		return st.Leader != "", fmt.Sprintf("%s has no leader yet", m.nodes[0].name)
	}); err != nil {
		t.Fatal(err)
	}
	started := []int{0}
	for i := 1; i < o.nodes; i++ {
		if err := m.start(i, []string{m.nodes[0].gossip}); err != nil {
			t.Fatal(err)
		}
		started = append(started, i)
	}
	if err := faultPoll(45*time.Second, 100*time.Millisecond, func() (bool, string) { return m.healthy(started) }); err != nil {
		t.Fatalf("mesh did not come up: %v", err)
	}
	return m
}

// keepArtifacts copies the node logs, RUNLOG and SPAWNLOG of a failed test
// out of its temp dir (which the test removes) for the bug report.
func (m *faultMesh) keepArtifacts(t *testing.T) {
	keep, err := os.MkdirTemp("", "ourci-fault-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Logf("cannot keep the artifacts: %v", err)
		return
	}
	files := append([]string{m.runLog, m.spawnLog, m.spawnErr}, m.artifacts...)
	for _, n := range m.nodes {
		files = append(files, n.logPath)
	}
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			os.WriteFile(filepath.Join(keep, filepath.Base(f)), data, 0o644)
		}
	}
	t.Logf("node logs, RUNLOG and SPAWNLOG kept in %s", keep)
}

// writeScripts writes the task scripts. A leaf task (task.sh LABEL SECONDS)
// records its start and end in RUNLOG around a sleep; a root task (root.sh
// LABEL SECONDS CHILD_SECONDS...) records its start, spawns one child per
// CHILD_SECONDS through the CLI (appending each acknowledged spawn to
// SPAWNLOG), sleeps, and records its end. Lines are short and appended with
// O_APPEND in one write each, so concurrent writers never interleave.
func (m *faultMesh) writeScripts(t *testing.T) {
	m.runLog = filepath.Join(m.dir, "RUNLOG")
	m.spawnLog = filepath.Join(m.dir, "SPAWNLOG")
	m.spawnErr = filepath.Join(m.dir, "spawn-errors.log")
	m.taskScript = filepath.Join(m.dir, "task.sh")
	m.rootScript = filepath.Join(m.dir, "root.sh")
	for _, f := range []string{m.runLog, m.spawnLog, m.spawnErr} {
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(what string) string {
		return fmt.Sprintf(`echo "$OURCI_TASK $OURCI_ATTEMPT $OURCI_NODE_NAME %s $OURCI_JOB $label $$ $(date +%%s%%N)" >>%s`, what, m.runLog)
	}
	task := "label=$1\n" + rec("start") + "\nsleep \"$2\"\n" + rec("end") + "\n"
	root := "label=$1; secs=$2; shift 2\n" + rec("start") + `
i=0
for cs in "$@"; do
	i=$((i+1))
	child="$label.a$OURCI_ATTEMPT.c$i"
	if out=$(ourci-node spawn --json -t ` + faultTopic + ` -- "sh ` + m.taskScript + ` $child $cs" 2>>` + m.spawnErr + `); then
		echo "ACK $OURCI_TASK $OURCI_ATTEMPT $child $out" >>` + m.spawnLog + `
	else
		echo "FAIL $OURCI_TASK $OURCI_ATTEMPT $child $?" >>` + m.spawnLog + `
	fi
done
sleep "$secs"
` + rec("end") + "\n"
	if err := os.WriteFile(m.taskScript, []byte(task), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.rootScript, []byte(root), 0o755); err != nil {
		t.Fatal(err)
	}
}

// leafCmd and rootCmd are the one-argument host commands of the two kinds of task.
func (m *faultMesh) leafCmd(label string, secs float64) string {
	return fmt.Sprintf("sh %s %s %.2f", m.taskScript, label, secs)
}

func (m *faultMesh) rootCmd(label string, secs float64, children []float64) string {
	s := fmt.Sprintf("sh %s %s %.2f", m.rootScript, label, secs)
	for _, c := range children {
		s += fmt.Sprintf(" %.2f", c)
	}
	return s
}

// labelOf returns the label in a task's args (the word after the script).
func labelOf(args []string) string {
	if len(args) != 1 {
		return ""
	}
	f := strings.Fields(args[0])
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// faultFreePorts returns gossip, raft and http ports free on ip (TCP and
// UDP), reserved until the test ends: a node killed and started again
// finds them free (see reservePorts).
func faultFreePorts(t testing.TB, ip string) []int {
	t.Helper()
	return reservePorts(t, ip, 3)
}

// start starts (or restarts, on its data dir) node i, joining peers.
func (m *faultMesh) start(i int, peers []string) error {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.up {
		return fmt.Errorf("%s is already running", n.name)
	}
	args := []string{"join", "--name", n.name, "--data-dir", n.dataDir,
		"--bind", n.gossip, "--raft", n.raft, "--http", n.httpAddr,
		"--topic", faultTopic, "--slots", strconv.Itoa(m.slots), "--secret-file", m.secretFile}
	if m.maxAttempts > 0 {
		args = append(args, "--max-attempts", strconv.Itoa(m.maxAttempts))
	}
	for _, p := range peers {
		args = append(args, "--peer", p)
	}
	logFile, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	n.lives++
	bin := n.bin
	if bin == "" {
		bin = binPath
	}
	fmt.Fprintf(logFile, "==== fault test: starting %s, life %d, at %s: %s %s\n", n.name, n.lives, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A test binary that dies (a panic, go test's -timeout) runs no
	// cleanup: the node dies with it instead of running on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if n.gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Getuid()), Gid: n.gid}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", n.name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.up = cmd, exited, true
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// kill sends SIGKILL to node i (if it runs) and waits until it is reaped; it
// records the moment for the checker.
func (m *faultMesh) kill(i int) {
	n := m.nodes[i]
	n.mu.Lock()
	if !n.up {
		n.mu.Unlock()
		return
	}
	cmd, exited := n.cmd, n.exited
	n.up = false
	n.mu.Unlock()
	cmd.Process.Kill()
	<-exited
	n.mu.Lock()
	n.killedAt = append(n.killedAt, time.Now().UnixNano())
	n.mu.Unlock()
	if f, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintf(f, "==== fault test: %s killed with SIGKILL at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
}

// exitedEarly reports nodes the test did not kill whose process has ended.
func (m *faultMesh) exitedEarly() []string {
	var out []string
	for _, n := range m.nodes {
		n.mu.Lock()
		if n.up {
			select {
			case <-n.exited:
				out = append(out, fmt.Sprintf("%s exited on its own: %v", n.name, n.waitErr))
			default:
			}
		}
		n.mu.Unlock()
	}
	return out
}

func (m *faultMesh) isUp(i int) bool {
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// live returns the indexes of the nodes the test has not killed.
func (m *faultMesh) live() []int {
	var out []int
	for i := range m.nodes {
		if m.isUp(i) {
			out = append(out, i)
		}
	}
	return out
}

func (m *faultMesh) all() []int {
	out := make([]int, len(m.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

func (m *faultMesh) others(i int) []int {
	var out []int
	for j := range m.nodes {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

func (m *faultMesh) gossipAddrs(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, m.nodes[i].gossip)
	}
	return out
}

func (m *faultMesh) index(name string) int {
	for i, n := range m.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

func (m *faultMesh) kills(name string) []int64 {
	i := m.index(name)
	if i < 0 {
		return nil
	}
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.killedAt...)
}

// stopsSent returns when the test sent node name SIGTERM (a clean stop):
// from then on the node may stop a running task and hand it back, even one
// whose process is about to end on its own.
func (m *faultMesh) stopsSent(name string) []int64 {
	i := m.index(name)
	if i < 0 {
		return nil
	}
	n := m.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.stopSentAt...)
}

// ---- the API, read directly over HTTP with the cluster token ----

type faultStatus struct {
	Node     string        `json:"node"`
	Leader   string        `json:"leader"`
	RaftRole string        `json:"raft_role"`
	Index    uint64        `json:"index"`
	Members  []faultMember `json:"members"`
	Jobs     []struct {
		ID string `json:"id"`
	} `json:"jobs"`
}

type faultMember struct {
	Name   string   `json:"name"`
	Topics []string `json:"topics"`
	Raft   string   `json:"raft"` // voter, nonvoter, staging or none
	Alive  bool     `json:"alive"`
	Leader bool     `json:"leader"`
	Blobs  int64    `json:"blobs"` // artifacts it holds
	Logs   int64    `json:"logs"`  // sealed task logs it holds
	// Unhealthy says why the node cannot do its work (disk full, Raft log
	// not writable); empty when healthy.
	Unhealthy  string `json:"unhealthy"`
	CatchingUp bool   `json:"catching_up"` // its replica is catching up after a start
	// Version and Schema are what its binary gossips (ourci-node version):
	// binaries from before bcb261e gossip neither, and show as schema 1.
	Version string `json:"version"`
	Schema  int    `json:"ledger_schema"`
}

type faultLedger struct {
	SchemaVersion int    `json:"schema_version"`
	Node          string `json:"node"`
	Index         uint64 `json:"index"`
	Hash          string `json:"hash"`
	Jobs          int    `json:"jobs"`
	Tasks         int    `json:"tasks"`
}

type faultJob struct {
	SchemaVersion int    `json:"schema_version"`
	Index         uint64 `json:"index"`
	Job           struct {
		ID       string    `json:"id"`
		State    string    `json:"state"`
		Status   string    `json:"status"`
		Reason   string    `json:"reason"`
		Root     string    `json:"root"`
		ClosedAt time.Time `json:"closed_at"`
	} `json:"job"`
	Tasks []faultTask `json:"tasks"`
}

// faultTask is a task as the fault suite reads it: labelled by its args.
type faultTask struct {
	taskView
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func (ft faultTask) String() string {
	return fmt.Sprintf("task %s (label %s) state %s attempt %d node %q exit %s error %q",
		ft.ID, labelOf(ft.Args), ft.State, ft.Attempt, ft.Node, ft.exit(), ft.Error)
}

func terminalState(s string) bool {
	switch s {
	case "passed", "failed", "infra_failed", "timed_out", "cancelled", "lost":
		return true
	}
	return false
}

// errNotFound is a 404 from the API.
var errNotFound = errors.New("not found")

// getJSON GETs path from node i with the cluster token, within 3s.
func (m *faultMesh) getJSON(ctx context.Context, i int, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.nodes[i].url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: GET %s: %v", m.nodes[i].name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: GET %s: %v", m.nodes[i].name, path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: GET %s: %w: %s", m.nodes[i].name, path, errNotFound, bytes.TrimSpace(body))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET %s: %s: %s", m.nodes[i].name, path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: GET %s: %v in %q", m.nodes[i].name, path, err, body)
	}
	return nil
}

func (m *faultMesh) status(ctx context.Context, i int) (faultStatus, error) {
	var st faultStatus
	return st, m.getJSON(ctx, i, "/v1/status", &st)
}

func (m *faultMesh) ledger(ctx context.Context, i int) (faultLedger, error) {
	var l faultLedger
	err := m.getJSON(ctx, i, "/v1/ledger", &l)
	if err == nil && (l.SchemaVersion != 1 || l.Hash == "") {
		err = fmt.Errorf("%s: /v1/ledger: unexpected body %+v", m.nodes[i].name, l)
	}
	return l, err
}

func (m *faultMesh) job(ctx context.Context, i int, id string) (faultJob, error) {
	var j faultJob
	err := m.getJSON(ctx, i, "/v1/jobs/"+id, &j)
	if err == nil && j.Job.ID != id {
		err = fmt.Errorf("%s: /v1/jobs/%s: answered job %q", m.nodes[i].name, id, j.Job.ID)
	}
	return j, err
}

// healthy reports whether every node in idx answers, lists every node in idx
// alive, a Raft voter, with topic work, and all name the same leader, one of
// idx. (A 3-node mesh whose third node is still a non-voter cannot elect a
// leader without the first: faults must wait for full membership.)
func (m *faultMesh) healthy(idx []int) (bool, string) {
	if early := m.exitedEarly(); len(early) > 0 {
		return false, strings.Join(early, "; ")
	}
	leader := ""
	for _, i := range idx {
		st, err := m.status(context.Background(), i)
		if err != nil {
			return false, err.Error()
		}
		if st.Leader == "" {
			return false, m.nodes[i].name + " sees no leader"
		}
		if leader != "" && st.Leader != leader {
			return false, fmt.Sprintf("%s sees leader %s, another node %s", m.nodes[i].name, st.Leader, leader)
		}
		leader = st.Leader
		for _, j := range idx {
			ok := false
			for _, mem := range st.Members {
				if mem.Name == m.nodes[j].name && mem.Alive && mem.Raft == "voter" && strings.Join(mem.Topics, ",") == faultTopic {
					ok = true
				}
			}
			if !ok {
				return false, fmt.Sprintf("%s does not list %s alive, voter, with topic %s: %+v", m.nodes[i].name, m.nodes[j].name, faultTopic, st.Members)
			}
		}
	}
	if li := m.index(leader); li < 0 || !containsInt(idx, li) {
		return false, fmt.Sprintf("the leader %q is not one of the nodes checked", leader)
	}
	return true, ""
}

// describe sums up how each live node sees the mesh, for failure messages.
func (m *faultMesh) describe() string {
	var out []string
	for _, i := range m.live() {
		st, err := m.status(context.Background(), i)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", m.nodes[i].name, err))
			continue
		}
		var mem []string
		for _, x := range st.Members {
			mem = append(mem, fmt.Sprintf("%s(alive=%v,%s)", x.Name, x.Alive, x.Raft))
		}
		out = append(out, fmt.Sprintf("%s: role %s, leader %q, index %d, members %s", m.nodes[i].name, st.RaftRole, st.Leader, st.Index, strings.Join(mem, " ")))
	}
	return strings.Join(out, "; ")
}

// pollHealthy waits until idx are healthy; on timeout the error lists every
// distinct reason seen (with when it was first seen) and each node's view.
func (m *faultMesh) pollHealthy(idx []int, timeout time.Duration) error {
	start := time.Now()
	var reasons []string
	seen := map[string]bool{}
	err := faultPoll(timeout, 50*time.Millisecond, func() (bool, string) {
		ok, why := m.healthy(idx)
		if !ok {
			key := why
			if len(key) > 120 {
				key = key[:120]
			}
			if !seen[key] && len(reasons) < 12 {
				seen[key] = true
				reasons = append(reasons, fmt.Sprintf("[+%v] %s", time.Since(start).Round(100*time.Millisecond), why))
			}
		}
		return ok, why
	})
	if err != nil {
		return fmt.Errorf("%v\n  reasons seen: %s\n  views now: %s", err, strings.Join(reasons, "\n    "), m.describe())
	}
	return nil
}

// leaderOf returns the index of the leader all of idx agree on.
func (m *faultMesh) leaderOf(idx []int) (int, error) {
	var li int
	err := faultPoll(30*time.Second, 50*time.Millisecond, func() (bool, string) {
		ok, why := m.healthy(idx)
		if !ok {
			return false, why
		}
		st, err := m.status(context.Background(), idx[0])
		if err != nil {
			return false, err.Error()
		}
		li = m.index(st.Leader)
		return li >= 0, "leader " + st.Leader
	})
	return li, err
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ---- spawning through the CLI ----

// cliSpawn runs `ourci-node spawn --json -t work -- CMD` against node i (the
// CLI makes the idempotency key and retries with it). It never fails the
// test: an error means the outcome is unknown to the caller.
func (m *faultMesh) cliSpawn(ctx context.Context, i int, command string) (job, task string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "spawn", "--json", "--node", m.nodes[i].url, "--secret-file", m.secretFile,
		"-t", faultTopic, "--", command)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("spawn via %s: %v: %s", m.nodes[i].name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var out struct {
		SchemaVersion int    `json:"schema_version"`
		Job           string `json:"job"`
		Task          string `json:"task"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.SchemaVersion != 1 || out.Job == "" || out.Task == "" {
		return "", "", fmt.Errorf("spawn via %s: want {schema_version:1,job,task}, got %q (%v)", m.nodes[i].name, stdout.String(), err)
	}
	return out.Job, out.Task, nil
}

// ---- RUNLOG and SPAWNLOG ----

// execution is one run of a task attempt as RUNLOG records it.
type execution struct {
	task       string
	attempt    int
	node, job  string
	label      string
	pid        int
	start, end int64 // unix nanos; end 0: no end line (yet)
	term       int64 // unix nanos of a "term" line: the script's SIGTERM trap ran (no end line follows)
}

func (e execution) String() string {
	end := "no end"
	switch {
	case e.end != 0:
		end = fmt.Sprintf("end %s", time.Unix(0, e.end).Format("15:04:05.000"))
	case e.term != 0:
		end = fmt.Sprintf("SIGTERM %s", time.Unix(0, e.term).Format("15:04:05.000"))
	}
	return fmt.Sprintf("[%s attempt %d on %s pid %d label %s: start %s, %s]", e.task, e.attempt, e.node, e.pid, e.label,
		time.Unix(0, e.start).Format("15:04:05.000"), end)
}

// readRunLog parses RUNLOG into executions (in start order), and returns the
// lines it could not parse. Besides start and end, a script may write a
// "term" line from its SIGTERM trap.
func readRunLog(path string) ([]*execution, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var execs []*execution
	byKey := map[string]*execution{}
	var bad []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 8 {
			bad = append(bad, line)
			continue
		}
		attempt, err1 := strconv.Atoi(f[1])
		pid, err2 := strconv.Atoi(f[6])
		at, err3 := strconv.ParseInt(f[7], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || (f[3] != "start" && f[3] != "end" && f[3] != "term") {
			bad = append(bad, line)
			continue
		}
		key := strings.Join([]string{f[0], f[1], f[2], f[6]}, " ")
		if f[3] == "start" {
			e := &execution{task: f[0], attempt: attempt, node: f[2], job: f[4], label: f[5], pid: pid, start: at}
			execs = append(execs, e)
			byKey[key] = e
			continue
		}
		switch e := byKey[key]; {
		case e != nil && f[3] == "term" && e.end != 0 && e.term == 0:
			e.term = at // the trap ran between the end line and the exit
		case e == nil || e.end != 0 || e.term != 0:
			bad = append(bad, line+"   (an end without its start)")
		case f[3] == "term":
			e.term = at
		default:
			e.end = at
		}
	}
	return execs, bad, nil
}

// spawnAck is a spawn acknowledged to its caller: the test's spawners, or a
// root task's CLI (SPAWNLOG).
type spawnAck struct {
	job, task, label string
	by               string // "test" or the spawning task and attempt
	at               time.Time
}

// readSpawnLog returns the children root tasks were told were spawned, and the
// number of child spawns whose CLI failed.
func readSpawnLog(path string) (acks []spawnAck, failed int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, " ", 5)
		switch {
		case len(f) == 5 && f[0] == "ACK":
			var out struct {
				Job  string `json:"job"`
				Task string `json:"task"`
			}
			if json.Unmarshal([]byte(f[4]), &out) == nil && out.Task != "" {
				acks = append(acks, spawnAck{job: out.Job, task: out.Task, label: f[3], by: f[1] + " attempt " + f[2]})
			}
		case len(f) >= 4 && f[0] == "FAIL":
			failed++
		}
	}
	return acks, failed, nil
}

// taskProcessAlive reports whether pid still runs as a process of task.
func taskProcessAlive(pid int, task string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	if !bytes.Contains(env, []byte("\x00OURCI_TASK="+task+"\x00")) && !bytes.HasPrefix(env, []byte("OURCI_TASK="+task+"\x00")) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return !(i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z')
}

// killOrphans kills the process groups of task processes that are still
// running (a kill -9 of a node leaves its tasks running).
func (m *faultMesh) killOrphans() {
	execs, _, err := readRunLog(m.runLog)
	if err != nil {
		return
	}
	for _, e := range execs {
		if e.end == 0 && taskProcessAlive(e.pid, e.task) {
			if pgid, err := syscall.Getpgid(e.pid); err == nil && pgid > 1 {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
			syscall.Kill(e.pid, syscall.SIGKILL)
		}
	}
}

// ---- small helpers ----

// faultPoll polls cond every interval until it holds or timeout (scaled
// by OURCI_TEST_TIMEOUT_SCALE, as wait.For's) passes. It returns an error
// instead of failing the test: the chaos run calls it off the test's
// goroutine.
func faultPoll(timeout, interval time.Duration, cond func() (bool, string)) error {
	timeout = wait.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: %s", timeout, why)
		}
		time.Sleep(interval)
	}
}
