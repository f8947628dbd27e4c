package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// These tests run against the machine's real Docker engine. They skip only
// when no engine answers, and fail instead when OURCI_REQUIRE_DOCKER=1.
// Their image is made once per test binary by scripts/make-image.sh from
// the machine's busybox-static: nothing is pulled.

const (
	testImage           = "ourci-test-busybox:latest"
	testEntrypointImage = "ourci-test-busybox-entrypoint:latest" // the same, with an ENTRYPOINT and a CMD
	missingImage        = "ourci-test-no-such-image:none"
)

// dockerDeadline bounds every wait in the Docker tests.
const dockerDeadline = 60 * time.Second

var (
	engineOnce sync.Once
	engineCli  *client.Client
	engineErr  error // the engine does not answer

	imageOnce sync.Once
	imageErr  error
)

// engine returns a client of the machine's Docker engine and makes the test
// images once, or skips (loudly) the test when no engine answers.
func engine(t *testing.T) *client.Client {
	t.Helper()
	engineOnce.Do(func() {
		engineCli, engineErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if engineErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, engineErr = engineCli.Ping(ctx)
	})
	if engineErr != nil {
		if os.Getenv("OURCI_REQUIRE_DOCKER") == "1" {
			t.Fatalf("OURCI_REQUIRE_DOCKER=1 but no Docker engine answers: %v", engineErr)
		}
		t.Skipf("SKIPPED, DOCKER EXECUTOR NOT TESTED: no Docker engine answers (%v); set OURCI_REQUIRE_DOCKER=1 to make this a failure", engineErr)
	}
	imageOnce.Do(func() { imageErr = makeTestImages(engineCli) })
	if imageErr != nil {
		t.Fatalf("making the test images: %v", imageErr)
	}
	return engineCli
}

// makeTestImages makes testImage with scripts/make-image.sh and derives
// testEntrypointImage from it.
func makeTestImages(cli *client.Client) error {
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "make-image.sh"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", script, testImage).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, testImage, err, out)
	}
	base, err := cli.ImageInspect(ctx, testImage)
	if err != nil {
		return err
	}
	old, err := cli.ImageInspect(ctx, testEntrypointImage)
	if err == nil && old.Config != nil && old.Config.Labels[testBaseLabel] == base.ID {
		return nil // made from the same base image before
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: testImage, Labels: map[string]string{LabelNode: "test-image-maker"}}, nil, nil, nil, "")
	if err != nil {
		return err
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	_, err = cli.ContainerCommit(ctx, c.ID, container.CommitOptions{
		Reference: testEntrypointImage,
		Changes: []string{
			`ENTRYPOINT ["/bin/echo", "FROM-ENTRYPOINT"]`,
			`CMD ["FROM-CMD"]`,
			`LABEL ourci.node=`,
			`LABEL ` + testBaseLabel + `=` + base.ID,
		},
	})
	if err == nil && old.ID != "" {
		_, _ = cli.ImageRemove(ctx, old.ID, image.RemoveOptions{}) // the replaced one, unless in use
	}
	return err
}

// testBaseLabel on testEntrypointImage names the testImage it was made from.
const testBaseLabel = "ourci.test.base"

// newDocker returns a Docker executor with a node name of its own for this
// test. When the test ends it checks that no container of the node is left
// and removes any that are.
func newDocker(t *testing.T) *Docker {
	t.Helper()
	cli := engine(t)
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	d := &Docker{Client: cli, Node: fmt.Sprintf("test-%s-%d", name, time.Now().UnixNano())}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
		defer cancel()
		n, err := d.Sweep(ctx)
		if err != nil {
			t.Errorf("Sweep at cleanup: %v", err)
		}
		if n != 0 {
			t.Errorf("the test left %d containers of node %s behind", n, d.Node)
		}
	})
	return d
}

// liveOutput is an Output that tests can wait on while a task writes to it.
type liveOutput struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every Write
}

func newLiveOutput() *liveOutput { return &liveOutput{changed: make(chan struct{})} }

func (o *liveOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.b.Write(p)
}

func (o *liveOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// await waits until the output contains s.
func (o *liveOutput) await(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(dockerDeadline)
	for {
		o.mu.Lock()
		ok, ch := strings.Contains(o.b.String(), s), o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("waited %v for %q in the output; got:\n%s", dockerDeadline, s, o.String())
		}
	}
}

// dspec is a Spec for the test image with a fresh workspace.
func dspec(t *testing.T, out *liveOutput, args ...string) Spec {
	return Spec{
		Args:   args,
		Image:  testImage,
		Env:    []string{"FOO=bar baz", "PATH=/node/only/path"},
		Dir:    t.TempDir(),
		Output: out,
		Grace:  time.Second,
	}
}

// dstart starts s with d and destroys the container when the test ends.
func dstart(t *testing.T, ctx context.Context, d *Docker, s Spec) Process {
	t.Helper()
	p, err := d.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Cleanup(func() { destroy(t, p) })
	return p
}

// destroy calls p.Destroy with a deadline and expects no error.
func destroy(t *testing.T, p Process) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Destroy() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Destroy: got error %v, want nil", err)
		}
	case <-time.After(dockerDeadline):
		t.Errorf("Destroy: still blocked after %v", dockerDeadline)
	}
}

// dwait waits (with the Docker deadline) for p and returns its exit code.
func dwait(t *testing.T, p Process) int {
	t.Helper()
	return waitCodeWithin(t, p, dockerDeadline)
}

// containerOf returns the ID of the one container of d's node.
func containerOf(t *testing.T, d *Docker) string {
	t.Helper()
	ids := containersOf(t, d.Node)
	if len(ids) != 1 {
		t.Fatalf("node %s has containers %v, want exactly one", d.Node, ids)
	}
	return ids[0]
}

// containersOf lists (running or not) the containers labelled with node, by
// the docker CLI, as a user would look.
func containersOf(t *testing.T, node string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--no-trunc", "--filter", "label="+LabelNode+"="+node).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

func inspect(t *testing.T, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("ContainerInspect: %v", err)
	}
	return info
}

func TestDockerShellForm(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, `echo "$FOO" > from-container; echo "pwd=$(pwd)"; echo "uid=$(id -u):$(id -g)"; echo "PATH=$PATH"`)
	p := dstart(t, context.Background(), d, s)
	if code := dwait(t, p); code != 0 {
		t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
	}
	uid, gid := containerIDs()
	for _, want := range []string{
		"pwd=" + s.Dir + "\n",
		fmt.Sprintf("uid=%d:%d\n", uid, gid),
		"PATH=" + DockerPath + "\n", // the node's PATH is not passed on
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q; got:\n%s", want, out)
		}
	}
	file := filepath.Join(s.Dir, "from-container")
	b, err := os.ReadFile(file)
	if err != nil || string(b) != "bar baz\n" {
		t.Fatalf("workspace file: got %q, %v; want %q", b, err, "bar baz\n")
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != uid || int(sys.Gid) != gid {
		t.Errorf("workspace file owned by %d:%d, want the container user's %d:%d", sys.Uid, sys.Gid, uid, gid)
	}
}

// containerIDs is the uid:gid containers run as by default: DefaultUser
// for a node running as root, else the node's own.
func containerIDs() (uid, gid int) {
	if os.Geteuid() == 0 {
		uid, gid, _ := userIDs(DefaultUser)
		return uid, gid
	}
	return os.Getuid(), os.Getgid()
}

func TestDockerExecForm(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	for _, img := range []string{testImage, testEntrypointImage} {
		t.Run(img, func(t *testing.T) {
			out := newLiveOutput()
			s := dspec(t, out, "echo", "no shell: $FOO")
			s.Image = img
			if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
				t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
			}
			if got := out.String(); got != "no shell: $FOO\n" {
				t.Errorf("exec form output %q, want %q (no shell, and the image's entrypoint must not run)", got, "no shell: $FOO\n")
			}

			out = newLiveOutput()
			s = dspec(t, out, "env", "-u", "UNSET")
			s.Image = img
			if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
				t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
			}
			if got := out.String(); !strings.Contains(got, "FOO=bar baz\n") || !strings.Contains(got, "PATH="+DockerPath+"\n") {
				t.Errorf("exec form environment lacks FOO or PATH:\n%s", got)
			}

			out = newLiveOutput()
			s = dspec(t, out, "touch", "made-by-exec")
			s.Image = img
			if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
				t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(s.Dir, "made-by-exec")); err != nil {
				t.Errorf("exec form did not write into the workspace: %v", err)
			}

			out = newLiveOutput()
			s = dspec(t, out, `echo shell "$FOO"`)
			s.Image = img
			if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
				t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
			}
			if got := out.String(); got != "shell bar baz\n" {
				t.Errorf("shell form output %q, want %q (the image's entrypoint must not run)", got, "shell bar baz\n")
			}
		})
	}
}

func TestDockerExitCodes(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"exit 3"}, 3},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"kill -KILL $$"}, ExitSIGKILL},
		{[]string{"no-such-command"}, 127},
		{[]string{"no-such-command", "x"}, 127}, // exec form: found missing when run, not at Start
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := newLiveOutput()
			p := dstart(t, context.Background(), d, dspec(t, out, tc.args...))
			if code := dwait(t, p); code != tc.want {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.want, out)
			}
			// Every Wait gets the same result.
			if code := dwait(t, p); code != tc.want {
				t.Errorf("second Wait: exit code %d, want %d", code, tc.want)
			}
		})
	}
}

func TestDockerLiveOutput(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, `echo first; echo to-stderr >&2; while [ ! -e release ]; do sleep 0.05; done; echo second`)
	p := dstart(t, context.Background(), d, s)
	out.await(t, "first\n")     // while the container still runs: it waits for "release"
	out.await(t, "to-stderr\n") // stderr too, into the same writer
	if strings.Contains(out.String(), "second") {
		t.Fatal("saw output the task only writes later")
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := dwait(t, p); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !strings.HasSuffix(out.String(), "second\n") {
		t.Errorf("output %q does not end with the last line", out)
	}
}

// A nil Output discards, and a failing one does not block the task.
func TestDockerOutputNilOrFailing(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	s := dspec(t, nil, `i=0; while [ $i -lt 2000 ]; do echo "line $i of enough output to fill any pipe buffer"; i=$((i+1)); done`)
	s.Output = nil
	if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
		t.Fatalf("nil Output: exit code %d, want 0", code)
	}
	s.Output = failingWriter{}
	if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
		t.Fatalf("failing Output: exit code %d, want 0", code)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken log") }

func TestDockerBinds(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	tools := t.TempDir()
	tool := writeScript(t, tools, "mytool", "#!/bin/sh\necho tool-ran \"$@\"\n", 0o755)
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "data"), []byte("shared-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Binds = []string{tool, shared}
	out := newLiveOutput()
	s := dspec(t, out, strings.Join([]string{
		`mytool one`,
		`echo "PATH=$PATH"`,
		`cat ` + shared + `/data`,
		`if touch ` + tool + ` 2>/dev/null; then echo tool-writable; else echo tool-read-only; fi`,
		`if touch ` + shared + `/new 2>/dev/null; then echo dir-writable; else echo dir-read-only; fi`,
	}, "; "))
	if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
		t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
	}
	want := "tool-ran one\nPATH=" + tools + ":" + DockerPath + "\nshared-data\ntool-read-only\ndir-read-only\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}

	d.Binds = []string{"relative/path"}
	if _, err := d.Start(context.Background(), dspec(t, out, "true")); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative bind: got error %v, want one about absolute paths", err)
	}
	d.Binds = []string{filepath.Join(tools, "missing")}
	if _, err := d.Start(context.Background(), dspec(t, out, "true")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing bind: got error %v, want ErrNotExist", err)
	}
}

// serveHTTP answers "hello from the node" on addr (HOST:0) until the test
// ends, and returns the address it listens on.
func serveHTTP(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the node")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestDockerNetwork: by default a task runs on DefaultNetwork: it reaches
// its node on the network's gateway (Gateway), not on the host's loopback,
// and cannot reach another task's container. With Network "host" it shares
// the host's network and reaches the node on 127.0.0.1, as before.
func TestDockerNetwork(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) {
		d := newDocker(t)
		gw, ok, err := d.Gateway(context.Background())
		if err != nil || !ok || !gw.Is4() {
			t.Fatalf("Gateway: got %v, %v, %v; want an IPv4 address", gw, ok, err)
		}
		nw, err := d.Client.NetworkInspect(context.Background(), DefaultNetwork, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if nw.Driver != "bridge" || nw.Options["com.docker.network.bridge.enable_icc"] != "false" {
			t.Errorf("network %s: driver %q options %v, want a bridge with enable_icc=false", DefaultNetwork, nw.Driver, nw.Options)
		}
		onGateway := serveHTTP(t, net.JoinHostPort(gw.String(), "0"))
		onLoopback := serveHTTP(t, "127.0.0.1:0")

		// Another task's container, serving on its own address.
		out := newLiveOutput()
		other := dstart(t, context.Background(), d, dspec(t, out, `echo hi > index.html; httpd -p 8080 -h . && echo serving; sleep 1000`))
		out.await(t, "serving\n")
		ids := containersOf(t, d.Node)
		if len(ids) != 1 {
			t.Fatalf("containers %v, want one", ids)
		}
		ep, ok := inspect(t, d.Client, ids[0]).NetworkSettings.Networks[DefaultNetwork]
		if !ok || ep.IPAddress == "" {
			t.Fatalf("the other container has no address on %s (%v)", DefaultNetwork, ep)
		}
		otherIP := ep.IPAddress

		out = newLiveOutput()
		s := dspec(t, out, strings.Join([]string{
			// (busybox's wget -T crashes on a refused connection: timeout
			// instead.)
			`wget -q -O - http://` + onGateway + `/ || echo gateway-unreachable`,
			`timeout 3 wget -q -O - http://` + onLoopback + `/ 2>/dev/null || echo loopback-unreachable`,
			`timeout 3 wget -q -O - http://` + otherIP + `:8080/ 2>/dev/null || echo other-task-unreachable`,
		}, "; "))
		if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
			t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
		}
		if got, want := out.String(), "hello from the node\nloopback-unreachable\nother-task-unreachable\n"; got != want {
			t.Errorf("output:\n got %q\nwant %q", got, want)
		}
		other.Stop()
		dwait(t, other)
	})
	t.Run("host", func(t *testing.T) {
		d := newDocker(t)
		d.Network = "host"
		if _, ok, err := d.Gateway(context.Background()); ok || err != nil {
			t.Errorf("Gateway on the host network: got ok %v, %v; want none", ok, err)
		}
		onLoopback := serveHTTP(t, "127.0.0.1:0")
		out := newLiveOutput()
		s := dspec(t, out, "wget -q -O - http://"+onLoopback+"/")
		if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
			t.Fatalf("exit code %d, want 0; output:\n%s", code, out)
		}
		if out.String() != "hello from the node\n" {
			t.Errorf("output %q, want the node's answer", out)
		}
	})
}

func TestDockerStopIgnoringTERM(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, `trap "" TERM; echo ready; while :; do sleep 1; done`)
	s.Grace = 2 * time.Second
	p := dstart(t, context.Background(), d, s)
	out.await(t, "ready\n")
	begin := time.Now()
	p.Stop()
	p.Stop() // safe to call many times
	if code := dwait(t, p); code != ExitSIGKILL {
		t.Fatalf("exit code %d, want %d (killed after the grace period)", code, ExitSIGKILL)
	}
	if took := time.Since(begin); took < s.Grace {
		t.Errorf("killed after %v, before the grace period %v", took, s.Grace)
	}
	p.Stop() // and after the exit
}

// SIGTERM reaches the whole process tree, background jobs included, and
// ends it well before the grace period.
func TestDockerStopBackgroundAndForeground(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	for name, script := range map[string]string{
		"foreground": `sleep 1000 & echo ready; sleep 1000`,
		"wait":       `sleep 1000 & echo ready; wait`,
		// The background child gets SIGTERM itself (not only the shell):
		// the parent waits for it, so it only ends if the child does.
		"tree": `sh -c 'trap "echo child-got-TERM; exit 0" TERM; echo child-ready; while :; do sleep 0.1; done' &
			trap 'wait; echo parent-done; exit 143' TERM
			while ! grep -q child-ready child.log 2>/dev/null; do sleep 0.05; done
			echo ready; wait`,
	} {
		t.Run(name, func(t *testing.T) {
			out := newLiveOutput()
			s := dspec(t, out, strings.Replace(script, "echo child-ready", "echo child-ready > child.log", 1))
			s.Grace = 30 * time.Second
			p := dstart(t, context.Background(), d, s)
			out.await(t, "ready\n")
			begin := time.Now()
			p.Stop()
			if code := dwait(t, p); code != ExitSIGTERM {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, ExitSIGTERM, out)
			}
			// (The shell may also say "Terminated" for its killed sleep.)
			if got := out.String(); name == "tree" && !(strings.Contains(got, "child-got-TERM\n") && strings.Index(got, "child-got-TERM") < strings.Index(got, "parent-done\n")) {
				t.Errorf("the background child did not get SIGTERM; output:\n%s", out)
			}
			if took := time.Since(begin); took >= s.Grace {
				t.Errorf("stopped after %v: SIGTERM did not end it", took)
			}
		})
	}
}

func TestDockerContextCancelStops(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLiveOutput()
	p := dstart(t, ctx, d, dspec(t, out, `echo ready; sleep 1000`))
	out.await(t, "ready\n")
	cancel()
	if code := dwait(t, p); code != ExitSIGTERM {
		t.Fatalf("exit code %d, want %d", code, ExitSIGTERM)
	}

	// Output written after the cancel, during the grace period, still
	// arrives.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	out2 := newLiveOutput()
	p = dstart(t, ctx2, d, dspec(t, out2, `trap 'echo got-TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`))
	out2.await(t, "ready\n")
	cancel2()
	if code := dwait(t, p); code != 0 {
		t.Fatalf("exit code %d, want 0 (the trap's)", code)
	}
	if !strings.Contains(out2.String(), "got-TERM\n") {
		t.Errorf("output after the cancel is missing: %q", out2)
	}

	if _, err := d.Start(ctx, dspec(t, out, "true")); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a done context: got error %v, want context.Canceled", err)
	}
}

func TestDockerLabelsAndDefaults(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, "true")
	s.Labels = map[string]string{"ourci.job": "J1", "ourci.task": "T7", "ourci.attempt": "2", LabelNode: "someone-else"}
	p := dstart(t, context.Background(), d, s)
	dwait(t, p)
	info := inspect(t, d.Client, containerOf(t, d))
	want := map[string]string{"ourci.job": "J1", "ourci.task": "T7", "ourci.attempt": "2", LabelNode: d.Node}
	for k, v := range want {
		if got := info.Config.Labels[k]; got != v {
			t.Errorf("label %s=%q, want %q", k, got, v)
		}
	}
	hc := info.HostConfig
	if hc.PidsLimit == nil || *hc.PidsLimit != DefaultPids {
		t.Errorf("pids limit %v, want %d", hc.PidsLimit, DefaultPids)
	}
	if _, ok := info.NetworkSettings.Networks[DefaultNetwork]; !ok || len(info.NetworkSettings.Networks) != 1 {
		t.Errorf("networks %v, want only %s", slices.Collect(maps.Keys(info.NetworkSettings.Networks)), DefaultNetwork)
	}
	if hc.Memory != DefaultMemory || hc.MemorySwap != DefaultMemory || hc.NanoCPUs != DefaultNanoCPUs {
		t.Errorf("memory %d, swap %d, cpus %d: want the defaults %d, %d, %d", hc.Memory, hc.MemorySwap, hc.NanoCPUs, DefaultMemory, DefaultMemory, int64(DefaultNanoCPUs))
	}
	if hc.AutoRemove {
		t.Error("AutoRemove is set: the exit code could be lost")
	}
	if len(s.Labels) != 4 || s.Labels[LabelNode] != "someone-else" {
		t.Errorf("Start changed the caller's labels: %v", s.Labels)
	}
}

// TestDockerLimits: 0 takes the default limit, a negative value none, any
// other value is the limit.
func TestDockerLimits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name               string
		mem, cpus, pids    int64
		wMem, wCPUs, wPids int64
	}{
		{"defaults", 0, 0, 0, DefaultMemory, DefaultNanoCPUs, DefaultPids},
		{"none", -1, -1, -1, 0, 0, -1},
		{"set", 64 << 20, 5e8, 100, 64 << 20, 5e8, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &Docker{Node: "n", Memory: tt.mem, NanoCPUs: tt.cpus, Pids: tt.pids}
			_, hc, err := d.config(Spec{Args: []string{"true"}, Image: testImage, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			r := hc.Resources
			if r.Memory != tt.wMem || r.NanoCPUs != tt.wCPUs || r.PidsLimit == nil || *r.PidsLimit != tt.wPids {
				t.Errorf("memory %d, cpus %d, pids %v: want %d, %d, %d", r.Memory, r.NanoCPUs, *r.PidsLimit, tt.wMem, tt.wCPUs, tt.wPids)
			}
			if wantSwap := tt.wMem; r.MemorySwap != wantSwap {
				t.Errorf("memory+swap %d, want %d", r.MemorySwap, wantSwap)
			}
		})
	}
}

func TestDockerSecurityDefaults(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	d.Memory = 64 << 20
	d.NanoCPUs = 5e8
	d.Pids = 100
	out := newLiveOutput()
	p := dstart(t, context.Background(), d, dspec(t, out, `grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; ls /var/run/docker.sock 2>/dev/null || echo no-socket; ps -o pid,args | sed -n 2p`))
	if code := dwait(t, p); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	// The task runs as a user that is not root (DefaultUser for a root
	// node), so none of the kept capabilities is in effect.
	capEff := "0000000000000000"
	for _, want := range []string{"CapEff:\t" + capEff + "\n", "NoNewPrivs:\t1\n", "no-socket\n", "docker-init"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inside the container: output lacks %q; got:\n%s", want, out)
		}
	}

	info := inspect(t, d.Client, containerOf(t, d))
	hc := info.HostConfig
	if hc.Privileged {
		t.Error("container is privileged")
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) {
		t.Errorf("CapDrop %v, want [ALL]", hc.CapDrop)
	}
	caps := slices.Clone(hc.CapAdd)
	for i, c := range caps {
		caps[i] = strings.TrimPrefix(c, "CAP_")
	}
	slices.Sort(caps)
	if want := []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"}; !slices.Equal(caps, want) {
		t.Errorf("CapAdd %v, want %v", hc.CapAdd, want)
	}
	if !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
		t.Errorf("SecurityOpt %v lacks no-new-privileges", hc.SecurityOpt)
	}
	if hc.Memory != d.Memory || hc.NanoCPUs != d.NanoCPUs || hc.PidsLimit == nil || *hc.PidsLimit != d.Pids {
		t.Errorf("limits: memory %d, cpus %d, pids %v; want %d, %d, %d", hc.Memory, hc.NanoCPUs, hc.PidsLimit, d.Memory, d.NanoCPUs, d.Pids)
	}
	if hc.Init == nil || !*hc.Init {
		t.Error("Init is not set")
	}
	for _, m := range info.Mounts {
		if strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Destination, "docker.sock") {
			t.Errorf("the Docker socket is mounted: %+v", m)
		}
	}
	uid, gid := containerIDs()
	if want := fmt.Sprintf("%d:%d", uid, gid); info.Config.User != want {
		t.Errorf("user %q, want %q", info.Config.User, want)
	}
}

func TestDockerMissingImage(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, "true")
	s.Image = missingImage
	_, err := d.Start(context.Background(), s)
	if err == nil {
		t.Fatal("Start of a missing image: got nil error")
	}
	for _, want := range []string{`"` + missingImage + `"`, "node " + d.Node, "pulling is off"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if ids := containersOf(t, d.Node); len(ids) != 0 {
		t.Errorf("a failed start left containers %v", ids)
	}

	// With pulling allowed, a pull that fails (nothing listens on the
	// registry's port) fails the start the same way.
	d.Pull = true
	s.Image = "127.0.0.1:1/ourci-test/none:latest"
	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	_, err = d.Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), `"`+s.Image+`"`) || !strings.Contains(err.Error(), "node "+d.Node) || !strings.Contains(err.Error(), "pulling it failed") {
		t.Errorf("failed pull: got error %v, want one naming the image, the node and the pull", err)
	}
	if !strings.Contains(out.String(), "pulling image "+s.Image) {
		t.Errorf("the pull is not in the output: %q", out)
	}
	if ids := containersOf(t, d.Node); len(ids) != 0 {
		t.Errorf("a failed start left containers %v", ids)
	}
}

func TestDockerRefusedSpecs(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	for name, tc := range map[string]struct {
		mod  func(*Spec)
		want string
	}{
		"script":   {func(s *Spec) { s.Script = "/bin/agent.sh" }, "agent scripts run on the host"},
		"no image": {func(s *Spec) { s.Image = "" }, "no image"},
		"no args":  {func(s *Spec) { s.Args = nil }, "no command"},
		"no dir":   {func(s *Spec) { s.Dir = "" }, "no workspace"},
	} {
		t.Run(name, func(t *testing.T) {
			s := dspec(t, out, "true", "x")
			tc.mod(&s)
			_, err := d.Start(context.Background(), s)
			if err == nil || !strings.HasPrefix(err.Error(), "executor: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if ids := containersOf(t, d.Node); len(ids) != 0 {
		t.Errorf("refused starts left containers %v", ids)
	}
	anon := &Docker{Client: d.Client}
	if _, err := anon.Start(context.Background(), dspec(t, out, "true")); err == nil {
		t.Error("Start without a node name: got nil error")
	}
	if _, err := anon.Sweep(context.Background()); err == nil {
		t.Error("Sweep without a node name: got nil error")
	}
}

func TestDockerDestroy(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	out := newLiveOutput()
	p, err := d.Start(context.Background(), dspec(t, out, `echo ready; sleep 1000`))
	if err != nil {
		t.Fatal(err)
	}
	out.await(t, "ready\n")
	id := containerOf(t, d)
	destroy(t, p)
	destroy(t, p) // safe twice
	if code := dwait(t, p); code != ExitSIGKILL {
		t.Errorf("exit code after Destroy %d, want %d", code, ExitSIGKILL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	if _, err := d.Client.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Errorf("container after Destroy: got %v, want not found", err)
	}
	p.Stop() // still safe

	// Destroy of a finished container, concurrently from two goroutines.
	p, err = d.Start(context.Background(), dspec(t, out, "exit 4"))
	if err != nil {
		t.Fatal(err)
	}
	if code := dwait(t, p); code != 4 {
		t.Errorf("exit code %d, want 4", code)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { destroy(t, p) })
	}
	wg.Wait()
	if code := dwait(t, p); code != 4 {
		t.Errorf("exit code after Destroy %d, want 4", code)
	}
	if ids := containersOf(t, d.Node); len(ids) != 0 {
		t.Errorf("containers left after Destroy: %v", ids)
	}
}

func TestDockerSweep(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	other := newDocker(t)
	out := newLiveOutput()
	running, err := d.Start(context.Background(), dspec(t, out, `echo ready; sleep 1000`))
	if err != nil {
		t.Fatal(err)
	}
	exited, err := d.Start(context.Background(), dspec(t, out, "exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	if code := dwait(t, exited); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out.await(t, "ready\n")
	kept := dstart(t, context.Background(), other, dspec(t, newLiveOutput(), "sleep 1000"))
	// A crash: running and exited are never destroyed.

	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	n, err := d.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep: removed %d, %v; want 2, nil", n, err)
	}
	if ids := containersOf(t, d.Node); len(ids) != 0 {
		t.Errorf("containers left after Sweep: %v", ids)
	}
	if ids := containersOf(t, other.Node); len(ids) != 1 {
		t.Errorf("Sweep touched another node's containers: it has %v", ids)
	}
	if code := dwait(t, running); code != ExitSIGKILL {
		t.Errorf("swept container: exit code %d, want %d", code, ExitSIGKILL)
	}
	if n, err := d.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep: removed %d, %v; want 0, nil", n, err)
	}
	destroy(t, running) // the container is gone already: still fine
	destroy(t, exited)
	kept.Stop()
}

func TestDockerPing(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), dockerDeadline)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// A Docker without a Client makes its own from the environment.
	own := &Docker{Node: d.Node}
	defer own.Close()
	if err := own.Ping(ctx); err != nil {
		t.Fatalf("Ping with a client from the environment: %v", err)
	}
	dead := &Docker{Node: "x"}
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+filepath.Join(t.TempDir(), "none.sock")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	dead.Client = cli
	if err := dead.Ping(ctx); err == nil || !strings.Contains(err.Error(), "node x") {
		t.Errorf("Ping of no engine: got %v, want an error naming the node", err)
	}
}

// TestMain lets the test binary stand in for a setuid program: with
// OURCI_TEST_PRINT_EUID=1 it prints its effective uid and exits.
func TestMain(m *testing.M) {
	if os.Getenv("OURCI_TEST_PRINT_EUID") == "1" {
		fmt.Println(os.Geteuid())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDockerWorkspaceNosuid: even a container running as root (User 0:0,
// with the kept capabilities in effect) cannot leave a setuid-root program
// for the host: while the container runs, the workspace is mounted nosuid
// and nodev on the host (a program made setuid root there runs with the
// caller's uid), and once the container is destroyed, no setuid bit is
// left. The task's user and the workspace's owner are checked too.
func TestDockerWorkspaceNosuid(t *testing.T) {
	t.Parallel()
	nobody := taskUser(t) // root only: runs the probe as nobody
	d := newDocker(t)
	d.User = "0:0"
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := newLiveOutput()
	s := dspec(t, out, `grep " $PWD " /proc/self/mountinfo | grep -q nosuid,nodev && echo inside-nosuid,nodev; grep -E '^CapEff:' /proc/self/status; chmod 4755 probe && chmod 2755 probe2 && echo made-setuid; while [ ! -e release ]; do sleep 0.05; done`)
	s.Dir = reachable(t)
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"probe", "probe2"} {
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o755); err != nil { // root's, as a container's root would copy it
			t.Fatal(err)
		}
	}
	p := dstart(t, context.Background(), d, s)
	out.await(t, "made-setuid\n")
	capEff := fmt.Sprintf("CapEff:\t%016x\n", 1<<0|1<<1|1<<3|1<<5|1<<6|1<<7) // CHOWN DAC_OVERRIDE FOWNER KILL SETGID SETUID
	if !strings.Contains(out.String(), capEff) {
		t.Errorf("inside the container: output lacks %q (root's kept capabilities); got:\n%s", capEff, out)
	}
	if !strings.Contains(out.String(), "inside-nosuid,nodev\n") {
		t.Errorf("inside the container: the workspace is not mounted nosuid,nodev; output:\n%s", out)
	}

	probe := filepath.Join(s.Dir, "probe")
	if fi, err := os.Stat(probe); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("probe: mode %v (%v), want setuid as the container made it", fi.Mode(), err)
	}
	cmd := exec.Command(probe)
	cmd.Env = []string{"OURCI_TEST_PRINT_EUID=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody.UID, Gid: nobody.GID}}
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("running the setuid probe as nobody: %v", err)
	}
	if want := fmt.Sprintf("%d\n", nobody.UID); string(got) != want {
		t.Errorf("the setuid-root probe run by nobody on the host: effective uid %q, want %q (nosuid)", got, want)
	}

	if err := os.WriteFile(filepath.Join(s.Dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := dwait(t, p); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	destroy(t, p)
	for _, name := range []string{"probe", "probe2"} {
		fi, err := os.Stat(filepath.Join(s.Dir, name))
		if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s after Destroy: mode %v (%v), want 0755 without setuid or setgid", name, fi.Mode(), err)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(b), " "+s.Dir+" ") {
		t.Errorf("after Destroy the workspace %s is still a mount point (%v)", s.Dir, err)
	}
}

// TestDockerWorkspaceHandedOver: a root node hands the workspace to the
// container's (default, unprivileged) user, so the task can write its
// checkout, files it makes there are its user's, and HOME is the
// workspace.
func TestDockerWorkspaceHandedOver(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: only a root node hands workspaces over")
	}
	d := newDocker(t)
	out := newLiveOutput()
	s := dspec(t, out, `echo more >> checked-out && echo edited; mkdir -p sub/dir && echo "home=$HOME"; id -u`)
	s.Env = append(s.Env, "HOME=/root")
	if err := os.WriteFile(filepath.Join(s.Dir, "checked-out"), []byte("src\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := dwait(t, dstart(t, context.Background(), d, s)); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	uid, _ := containerIDs()
	if got, want := out.String(), fmt.Sprintf("edited\nhome=%s\n%d\n", s.Dir, uid); got != want {
		t.Errorf("output:\n got %q\nwant %q", got, want)
	}
}

// TestDockerWorkspaceMountRefused: a root node that may not mount (in a
// container without CAP_SYS_ADMIN) still runs a non-root container, saying
// so in the task's output, and refuses to run a root one.
func TestDockerWorkspaceMountRefused(t *testing.T) { // not parallel: it replaces mountWorkspace
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: only a root node mounts workspaces")
	}
	d := newDocker(t)
	mountWorkspace = func(string) (func() error, error) { return nil, fmt.Errorf("mount: %w", syscall.EPERM) }
	defer func() { mountWorkspace = mountNosuid }()
	out := newLiveOutput()
	if code := dwait(t, dstart(t, context.Background(), d, dspec(t, out, "id -u"))); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	if got := out.String(); !strings.Contains(got, "not mounted nosuid") || !strings.HasSuffix(got, "65534\n") {
		t.Errorf("output %q, want the note and the unprivileged uid", got)
	}
	d.User = "0:0"
	if _, err := d.Start(context.Background(), dspec(t, out, "true")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("a root container without a nosuid workspace: got %v, want the mount's EPERM", err)
	}
}
