package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// nodeSpec describes one node of a test mesh.
type nodeSpec struct {
	Name   string   // --name, e.g. "node1"
	Topics []string // --topic values: "TOPIC" or "TOPIC=/abs/agent.sh"
	Slots  int      // --slots; 0 leaves the node's default
	Flags  []string // more join flags
	Env    []string // more environment variables of the node (KEY=VALUE)
	// Command, when set, replaces "BIN join": the program and its first
	// arguments, such as an ourci_agent link and -t TOPIC SCRIPT, which
	// then give the node its topics (Topics only says what ready expects);
	// the other join flags follow.
	Command []string
	Dir     string // the node's working directory; "" for the test's
}

// node is one running ourci-node join process.
type node struct {
	spec               nodeSpec
	gossip, raft, http string // 127.0.0.1:PORT
	url                string // http://127.0.0.1:PORT, for --node
	logPath            string // the process's stdout and stderr
	cmd                *exec.Cmd
	exited             chan struct{} // closed when the process has exited
	waitErr            error         // set before exited is closed
}

// mesh is a set of nodes sharing one secret, all stopped by t.Cleanup.
type mesh struct {
	bin        string // the ourci-node binary the nodes run
	dir        string
	secretFile string
	nodes      []*node
}

// result is what one CLI invocation gave.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// meshSlots bounds the meshes alive at once: the machine has two cores.
var meshSlots = make(chan struct{}, 2)

// startMesh starts the nodes (the first one founds the mesh, the others join
// it through its gossip address) and waits until every node's status shows
// every member with its topics, and a leader.
func startMesh(t *testing.T, specs []nodeSpec) *mesh {
	t.Helper()
	return startMeshWith(t, binPath, specs)
}

// startMeshWith is startMesh with the nodes running bin.
func startMeshWith(t *testing.T, bin string, specs []nodeSpec) *mesh {
	t.Helper()
	meshSlots <- struct{}{}
	t.Cleanup(func() { <-meshSlots })
	m := &mesh{bin: bin, dir: t.TempDir()}
	m.secretFile = filepath.Join(m.dir, "secret")
	out, err := exec.Command(bin, "keygen").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("ourci-node keygen: %v, output %q", err, out)
	}
	if err := os.WriteFile(m.secretFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, len(specs))
	for i, s := range specs {
		n := &node{spec: s, logPath: filepath.Join(m.dir, s.Name+".log")}
		n.setPorts(ports[3*i:])
		m.nodes = append(m.nodes, n)
	}
	// Cleanups run last-registered first: stop the nodes, then show their logs.
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range m.nodes {
				t.Logf("---- last lines of %s's log (%s) ----\n%s", n.spec.Name, n.logPath, tail(n.logPath, 60))
			}
		}
	})
	t.Cleanup(func() { m.stop(t) })

	m.startBound(t, 0)
	wait.For(t, 30*time.Second, specs[0].Name+" to elect itself leader", func() (bool, string) {
		m.nodes[0].mustBeRunning(t)
		st, err := m.meshStatus(t, 0)
		if err != nil {
			return false, err.Error()
		}
		return st.Leader != "", fmt.Sprintf("%s has no leader yet: %+v", specs[0].Name, st)
	})
	var joiners []int
	for i := 1; i < len(specs); i++ {
		joiners = append(joiners, i)
	}
	m.startBound(t, joiners...)
	wait.For(t, 30*time.Second, "every node to show every member, their topics and a leader", m.ready(t))
	return m
}

// setPorts gives n the gossip, raft and HTTP ports p[0], p[1], p[2] on
// 127.0.0.1.
func (n *node) setPorts(p []int) {
	n.gossip = fmt.Sprintf("127.0.0.1:%d", p[0])
	n.raft = fmt.Sprintf("127.0.0.1:%d", p[1])
	n.http = fmt.Sprintf("127.0.0.1:%d", p[2])
	n.url = "http://" + n.http
}

// startTries bounds how often startBound moves a node to new ports.
const startTries = 5

// startBound starts the nodes idx, each on ports freePorts reserved, and
// waits until each serves HTTP (a node serves only once it holds its
// gossip, raft and HTTP ports). The reservation keeps the kernel and other
// test processes off the ports, but a process that does not reserve may
// still bind one: a node that exits saying "address already in use" is
// started again on new ports, up to startTries times. Only for a node's
// first start: nothing refers to its ports before it serves (a restart
// keeps its ports, which the reservation holds for it).
func (m *mesh) startBound(t *testing.T, idx ...int) {
	t.Helper()
	for try := 1; len(idx) > 0; try++ {
		for _, i := range idx {
			m.startNode(t, i)
		}
		var again []int
		for _, i := range idx {
			n := m.nodes[i]
			wait.For(t, 30*time.Second, n.spec.Name+" to serve HTTP or exit", func() (bool, string) {
				if n.hasExited() || n.serves() {
					return true, ""
				}
				return false, fmt.Sprintf("%s does not serve HTTP on %s yet", n.spec.Name, n.http)
			})
			if !n.hasExited() {
				continue
			}
			if try == startTries || !strings.Contains(tail(n.logPath, 30), "address already in use") {
				n.mustBeRunning(t)
			}
			t.Logf("%s: one of its ports (%s, %s, %s) was taken before it bound it; moving it to new ports", n.spec.Name, n.gossip, n.raft, n.http)
			n.setPorts(freePorts(t, 1))
			again = append(again, i)
		}
		idx = again
	}
}

// serves reports whether n answers HTTP (any status).
func (n *node) serves() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(n.url + "/v1/status")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// startNode starts node i; nodes after the first join node 0.
func (m *mesh) startNode(t *testing.T, i int) {
	t.Helper()
	n := m.nodes[i]
	prog, args := m.bin, []string{"join"}
	if len(n.spec.Command) > 0 {
		prog, args = n.spec.Command[0], slices.Clone(n.spec.Command[1:])
	}
	args = append(args, "--name", n.spec.Name, "--data-dir", filepath.Join(m.dir, n.spec.Name+".data"),
		"--bind", n.gossip, "--raft", n.raft, "--http", n.http, "--secret-file", m.secretFile)
	if i > 0 {
		args = append(args, "--peer", m.nodes[0].gossip)
	}
	if len(n.spec.Command) == 0 {
		for _, topic := range n.spec.Topics {
			args = append(args, "--topic", topic)
		}
	}
	if n.spec.Slots > 0 {
		args = append(args, "--slots", strconv.Itoa(n.spec.Slots))
	}
	args = append(args, n.spec.Flags...)
	logFile, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	n.cmd = exec.Command(prog, args...)
	n.cmd.Dir = n.spec.Dir
	n.cmd.Env = append(cleanEnv(), n.spec.Env...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", n.spec.Name, err)
	}
	n.exited = make(chan struct{})
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
}

// ready reports whether every node shows all members, their topics, and a leader.
func (m *mesh) ready(t *testing.T) func() (bool, string) {
	return func() (bool, string) {
		for i, n := range m.nodes {
			n.mustBeRunning(t)
			st, err := m.meshStatus(t, i)
			if err != nil {
				return false, err.Error()
			}
			if st.Leader == "" {
				return false, fmt.Sprintf("%s sees no leader: %+v", n.spec.Name, st)
			}
			for _, want := range m.nodes {
				got, ok := st.member(want.spec.Name)
				if !ok {
					return false, fmt.Sprintf("%s does not list member %s: %+v", n.spec.Name, want.spec.Name, st)
				}
				if g, w := topicNames(got.Topics), topicNames(want.spec.Topics); g != w {
					return false, fmt.Sprintf("%s shows %s with topics %s, want %s", n.spec.Name, want.spec.Name, g, w)
				}
			}
		}
		return true, ""
	}
}

// stop sends SIGTERM to every node still running, waits up to 10s, then
// SIGKILLs the rest and waits for them to exit.
func (m *mesh) stop(t *testing.T) {
	for _, n := range m.nodes {
		if n.cmd != nil && !n.hasExited() {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(10 * time.Second)
	for _, n := range m.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-deadline:
			t.Logf("%s did not exit within 10s of SIGTERM; sending SIGKILL", n.spec.Name)
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
}

// mustBeRunning fails the test if the node's process has exited.
func (n *node) mustBeRunning(t *testing.T) {
	t.Helper()
	if n.hasExited() {
		t.Fatalf("%s exited unexpectedly: %v; log tail:\n%s", n.spec.Name, n.waitErr, tail(n.logPath, 30))
	}
}

func (n *node) hasExited() bool {
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// run runs the CLI against node 0; see runOn.
func (m *mesh) run(t *testing.T, args ...string) result {
	t.Helper()
	return m.runOn(t, 0, args...)
}

// runOn runs `ourci-node CMD --node URL --secret-file F ARGS...` against node
// i, where args is CMD ARGS..., with a 30s timeout. CMD is one word, or two
// for blob (blob put, blob get).
func (m *mesh) runOn(t *testing.T, i int, args ...string) result {
	t.Helper()
	return m.runTimeout(t, i, 30*time.Second, args...)
}

// runTimeout is runOn with a given timeout; running past it fails the test.
func (m *mesh) runTimeout(t *testing.T, i int, timeout time.Duration, args ...string) result {
	t.Helper()
	verb := 1
	if args[0] == "blob" && len(args) > 1 {
		verb = 2
	}
	full := append(append(args[:verb:verb], "--node", m.nodes[i].url, "--secret-file", m.secretFile), args[verb:]...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, full...)
	cmd.Env = cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("ourci-node %s: still running after %v; stdout %q stderr %q", strings.Join(full, " "), timeout, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ourci-node %s: %v", strings.Join(full, " "), err)
	}
	return r
}

// TestStartBoundMovesOffATakenPort: a node whose picked port another
// process took in the meantime is moved to new ports, not reported as a
// failed start.
func TestStartBoundMovesOffATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	m := &mesh{bin: binPath, dir: t.TempDir()}
	m.secretFile = filepath.Join(m.dir, "secret")
	out, err := exec.Command(binPath, "keygen").Output()
	if err != nil {
		t.Fatalf("ourci-node keygen: %v", err)
	}
	if err := os.WriteFile(m.secretFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	n := &node{spec: nodeSpec{Name: "node1", Topics: []string{"t"}}, logPath: filepath.Join(m.dir, "node1.log")}
	p := freePorts(t, 1)
	p[2] = taken.Addr().(*net.TCPAddr).Port // the HTTP port: bound last
	n.setPorts(p)
	m.nodes = append(m.nodes, n)
	t.Cleanup(func() { m.stop(t) })
	m.startBound(t, 0)
	if n.http == taken.Addr().String() {
		t.Fatalf("node1 serves on %s, the taken port", n.http)
	}
	wait.For(t, 30*time.Second, "the mesh to be ready", m.ready(t))
}
