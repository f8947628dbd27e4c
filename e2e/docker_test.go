package e2e

// Docker end-to-end tests: real ourci-node processes with `--topic T=docker`
// run tasks in local images on the machine's Docker engine, checked out from
// a local bare repository that stands in for GitHub.
//
// They skip, loudly, only when no Docker engine answers `docker version`;
// with OURCI_REQUIRE_DOCKER=1 (as .ci/run sets it) a missing engine fails
// them instead.
//
// TestHostTaskGetsCheckout needs git only, not Docker.
//
// Fixtures: testdata/docker/esp (the ESP_SDK stand-in image's build
// context; seed_test.go adds what the seed's scripts need to both images)
// and the seed's repository (scripts.WriteSeedRepo: its scripts as printed
// in the stand-in tree), which makeSeedRepo commits.
//
// Docker nodes get names unique to the test binary (dockerNodeName): a node
// sweeps every container labelled with its name when it starts, so meshes
// sharing the engine must not share names.

import (
	"bufio"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/scripts"

	"github.com/ourci/ourci/node/nodetest/wait"
)

const (
	dockerBaseImage    = "ourci-e2e-base:1"           // BASE_SDK: scripts/make-image.sh's busybox image
	dockerESPImage     = "ourci-e2e-esp:1"            // ESP_SDK: FROM the base, plus /opt/esp-sdk/VERSION
	dockerMissingImage = "ourci-e2e-does-not-exist:1" // never built
	dockerTopic        = buildTopic + "=docker"       // the --topic value of a Docker build node

	labelJob  = "ourci.job"
	labelTask = "ourci.task"
	labelNode = "ourci.node"
)

// requireDocker skips the test, loudly, when no Docker engine answers, or
// fails it when OURCI_REQUIRE_DOCKER=1.
func requireDocker(t *testing.T) {
	t.Helper()
	dockerEngine.once.Do(func() {
		out, err := dockerCmd(30*time.Second, "docker", "version", "--format", "{{.Server.Version}}")
		if err == nil && strings.TrimSpace(out) == "" {
			err = errors.New("docker version printed no server version")
		}
		if err != nil {
			dockerEngine.err = fmt.Errorf("no Docker engine answers: %v", err)
			if os.Getenv("OURCI_REQUIRE_DOCKER") != "1" {
				fmt.Fprintf(os.Stderr, "e2e: SKIPPING THE DOCKER TESTS: %v (set OURCI_REQUIRE_DOCKER=1 to fail instead)\n", dockerEngine.err)
			}
			return
		}
		dockerEngine.version = strings.TrimSpace(out)
	})
	if err := dockerEngine.err; err != nil {
		if os.Getenv("OURCI_REQUIRE_DOCKER") == "1" {
			t.Fatalf("OURCI_REQUIRE_DOCKER=1, but %v", err)
		}
		t.Skipf("SKIPPED, NO DOCKER ENGINE: %v (set OURCI_REQUIRE_DOCKER=1 to fail instead)", err)
	}
}

var dockerEngine struct {
	once    sync.Once
	version string
	err     error
}

// dockerCmd runs a command with a timeout and returns its stdout; its error
// carries its stderr.
func dockerCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%s %s: still running after %v", name, strings.Join(args, " "), timeout)
	case err != nil:
		err = fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), err
}

// dockerImages makes the two images once per test binary and returns the
// content of the ESP image's /opt/esp-sdk/VERSION. Both builds are
// idempotent and the images are left for the next run.
func dockerImages(t *testing.T) (espVersion string) {
	t.Helper()
	images.once.Do(func() {
		start := time.Now()
		images.espVersion, images.err = buildDockerImages()
		images.took = time.Since(start)
	})
	if images.err != nil {
		t.Fatalf("making the test images: %v", images.err)
	}
	t.Logf("Docker engine %s; images %s and %s ready (made or found in %v)", dockerEngine.version, dockerBaseImage, dockerESPImage, images.took.Round(time.Millisecond))
	return images.espVersion
}

var images struct {
	once       sync.Once
	espVersion string
	took       time.Duration
	err        error
}

func buildDockerImages() (string, error) {
	root, err := findRepoRoot()
	if err != nil {
		return "", err
	}
	if out, err := dockerCmd(5*time.Minute, "sh", filepath.Join(root, "scripts", "make-image.sh"), dockerBaseImage); err != nil {
		return "", fmt.Errorf("scripts/make-image.sh %s: %v\n%s", dockerBaseImage, err, out)
	}
	espDir, err := filepath.Abs(filepath.Join("testdata", "docker", "esp"))
	if err != nil {
		return "", err
	}
	version, err := os.ReadFile(filepath.Join(espDir, "VERSION"))
	if err != nil {
		return "", err
	}
	out, err := dockerCmd(5*time.Minute, "docker", "build", "-q", "--build-arg", "BASE="+dockerBaseImage, "-t", dockerESPImage, espDir)
	if err != nil {
		return "", fmt.Errorf("docker build -t %s %s: %v\n%s", dockerESPImage, espDir, err, out)
	}
	return strings.TrimSpace(string(version)), nil
}

// dockerNodeBinary returns an ourci-node binary that runs inside the busybox
// images as well as on the host, for the nodes of the Docker tests (a node
// mounts its own binary into its containers). That is binPath when it is
// statically linked; otherwise a CGO_ENABLED=0 build, made once next to it
// (TestMain removes that directory).
func dockerNodeBinary(t *testing.T) string {
	t.Helper()
	nodeBin.once.Do(func() {
		interp, err := elfInterpreter(binPath)
		if err != nil {
			nodeBin.err = err
			return
		}
		if interp == "" {
			nodeBin.path = binPath
			return
		}
		nodeBin.note = fmt.Sprintf("e2e/main_test.go builds a dynamically linked ourci-node (interpreter %s), "+
			"which cannot run in the busybox images it is mounted into; these nodes run a CGO_ENABLED=0 build instead", interp)
		root, err := findRepoRoot()
		if err != nil {
			nodeBin.err = err
			return
		}
		path := filepath.Join(filepath.Dir(binPath), "static", "ourci-node")
		build := exec.Command("go", "build", "-o", path, "./cmd/ourci-node")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			nodeBin.err = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/ourci-node: %v\n%s", err, out)
			return
		}
		if interp, err := elfInterpreter(path); err != nil || interp != "" {
			nodeBin.err = fmt.Errorf("CGO_ENABLED=0 build %s is still dynamically linked (interpreter %q, %v)", path, interp, err)
			return
		}
		nodeBin.path = path
	})
	if nodeBin.err != nil {
		t.Fatal(nodeBin.err)
	}
	if nodeBin.note != "" {
		t.Log(nodeBin.note)
	}
	return nodeBin.path
}

var nodeBin struct {
	once       sync.Once
	path, note string
	err        error
}

// elfInterpreter returns the dynamic loader an ELF executable asks for, ""
// for a statically linked one.
func elfInterpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", fmt.Errorf("reading the interpreter of %s: %v", path, err)
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

// dockerRunID tells this test binary's nodes from any other mesh on the same
// Docker engine: a node sweeps every container labelled with its name when it
// starts, so two meshes must never share a Docker node's name.
var dockerRunID = func() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// dockerNodeName is a node name unique to this run.
func dockerNodeName(base string) string { return base + "-" + dockerRunID }

// startDockerMesh is startMesh with the nodes running bin, and extra join
// flags per node name (e.g. --topic-memory). Once the nodes are stopped, it
// removes (and reports) any container left with one of their names.
func startDockerMesh(t *testing.T, bin string, specs []nodeSpec, extra map[string][]string) *mesh {
	t.Helper()
	var names []string
	for i, s := range specs {
		names = append(names, s.Name)
		specs[i].Flags = append(specs[i].Flags, extra[s.Name]...)
	}
	t.Cleanup(func() { removeNodeContainers(t, names) }) // runs after the nodes stopped
	return startMeshWith(t, bin, specs)
}

// dockerPS lists the IDs of the containers, running or not, that carry
// label (KEY=VALUE).
func dockerPS(label string) ([]string, error) {
	out, err := dockerCmd(30*time.Second, "docker", "ps", "-a", "-q", "--no-trunc", "--filter", "label="+label)
	if err != nil {
		return nil, fmt.Errorf("docker ps -a --filter label=%s: %v: %s", label, err, out)
	}
	return strings.Fields(out), nil
}

// removeNodeContainers force-removes the containers of the named nodes,
// reporting them: after the nodes stopped there should be none.
func removeNodeContainers(t *testing.T, names []string) {
	for _, name := range names {
		ids, err := dockerPS(labelNode + "=" + name)
		if err != nil {
			t.Logf("cleanup: %v", err)
			continue
		}
		if len(ids) == 0 {
			continue
		}
		listing, _ := dockerCmd(30*time.Second, "docker", "ps", "-a", "--filter", "label="+labelNode+"="+name,
			"--format", "{{.ID}} {{.Image}} {{.Status}} {{.Labels}}")
		t.Logf("cleanup: %d container(s) of node %s left after it stopped; removing them:\n%s", len(ids), name, listing)
		if out, err := dockerCmd(time.Minute, "docker", append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			t.Logf("cleanup: docker rm -f: %v: %s", err, out)
		}
	}
}

// waitNoContainer waits until no container carries label and returns how
// long that took.
func waitNoContainer(t *testing.T, label string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	wait.For(t, timeout, "no container labelled "+label, func() (bool, string) {
		ids, err := dockerPS(label)
		if err != nil {
			return false, err.Error()
		}
		return len(ids) == 0, fmt.Sprintf("containers labelled %s still exist: %v", label, ids)
	})
	return time.Since(start)
}

// dockerEvent is one line of `docker events --format '{{json .}}'`.
type dockerEvent struct {
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"` // labels, image, name
	} `json:"Actor"`
}

// dockerEvents records the container events of one node's containers from
// just before it was made (docker events --since: nothing is missed).
type dockerEvents struct {
	node   string
	mu     sync.Mutex
	list   []dockerEvent
	stderr strings.Builder
}

func watchDockerEvents(t *testing.T, nodeName string) *dockerEvents {
	t.Helper()
	e := &dockerEvents{node: nodeName}
	since := strconv.FormatInt(time.Now().Add(-2*time.Second).Unix(), 10)
	cmd := exec.Command("docker", "events", "--since", since, "--filter", "type=container",
		"--filter", "label="+labelNode+"="+nodeName, "--format", "{{json .}}")
	cmd.Env = cleanEnv()
	cmd.Stderr = &syncWriter{mu: &e.mu, w: &e.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker events: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev dockerEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				e.mu.Lock()
				e.list = append(e.list, ev)
				e.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-read
		cmd.Wait()
	})
	return e
}

// syncWriter serialises writes to w under mu.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// forLabel returns the events of containers labelled key=value.
func (e *dockerEvents) forLabel(key, value string) []dockerEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dockerEvent
	for _, ev := range e.list {
		if ev.Actor.Attributes[key] == value {
			out = append(out, ev)
		}
	}
	return out
}

func (e *dockerEvents) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d container events of node %s:", len(e.list), e.node)
	for _, ev := range e.list {
		a := ev.Actor.Attributes
		fmt.Fprintf(&b, "\n  %s %s image=%s task=%s job=%s", short12(ev.Actor.ID), ev.Action, a["image"], a[labelTask], a[labelJob])
	}
	if s := e.stderr.String(); s != "" {
		fmt.Fprintf(&b, "\n  docker events stderr: %s", s)
	}
	return b.String()
}

func short12(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// actions is the event actions in order ("exec_start: sh" and the like
// reduced to their verb).
func actions(evs []dockerEvent) []string {
	var out []string
	for _, ev := range evs {
		a, _, _ := strings.Cut(ev.Action, ":")
		out = append(out, a)
	}
	return out
}

// hasInOrder reports whether want is a subsequence of got.
func hasInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// waitTaskContainer waits until the events show task's container went
// through want (e.g. create, start, die, destroy), and returns its events.
func (e *dockerEvents) waitTaskContainer(t *testing.T, task string, timeout time.Duration, want ...string) []dockerEvent {
	t.Helper()
	var evs []dockerEvent
	wait.For(t, timeout, "the container events of task "+task, func() (bool, string) {
		evs = e.forLabel(labelTask, task)
		return hasInOrder(actions(evs), want), fmt.Sprintf("container of task %s: want events %v in order, got %v; %v", task, want, actions(evs), e)
	})
	return evs
}

// dockerJobView is `status --json JOB` with the fields the Docker tests read
// beyond jobView's: the job's source, the tasks' image and times.
type dockerJobView struct {
	SchemaVersion int `json:"schema_version"`
	Job           struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Status string `json:"status"`
		Reason string `json:"reason"`
		Source struct {
			Repo   string `json:"repo"`
			SHA    string `json:"sha"`
			Branch string `json:"branch"`
		} `json:"source"`
		CreatedAt time.Time `json:"created_at"`
		ClosedAt  time.Time `json:"closed_at"`
	} `json:"job"`
	Tasks []dockerTaskView `json:"tasks"`
}

type dockerTaskView struct {
	taskView
	Image      string    `json:"image"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func (tv dockerTaskView) String() string {
	return fmt.Sprintf("%v image %q", tv.taskView, tv.Image)
}

func (v dockerJobView) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s state %q status %q reason %q source %+v, %d tasks:", v.Job.ID, v.Job.State, v.Job.Status, v.Job.Reason, v.Job.Source, len(v.Tasks))
	for _, tv := range v.Tasks {
		fmt.Fprintf(&b, "\n  %v", tv)
	}
	return b.String()
}

func (v dockerJobView) task(id string) (dockerTaskView, bool) {
	for _, tv := range v.Tasks {
		if tv.ID == id {
			return tv, true
		}
	}
	return dockerTaskView{}, false
}

func closed(v dockerJobView) bool { return v.Job.State == "closed" }

// taskLog returns the whole log of a finished task, read through node i.
func taskLog(t *testing.T, m *mesh, i int, task string) string {
	t.Helper()
	r := m.runOn(t, i, "logs", task)
	if r.code != 0 {
		t.Fatalf("logs %s: %v", task, r)
	}
	return r.stdout
}

// seedRepo is the local stand-in for the seed's GitHub repository: a bare
// repository made from scripts.WriteSeedRepo (the seed's scripts as
// printed, in the stand-in tree) plus ci/VERSION, which every commit
// rewrites.
type seedRepo struct {
	bare, work string
	env        []string
	nonce      string
}

func makeSeedRepo(t *testing.T) *seedRepo {
	t.Helper()
	dir := t.TempDir()
	r := &seedRepo{bare: filepath.Join(dir, "github", "dev.git"), work: filepath.Join(dir, "work"), nonce: dockerRunID}
	r.env = append(cleanEnv(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=OurCI e2e", "GIT_AUTHOR_EMAIL=e2e@ourci.invalid",
		"GIT_COMMITTER_NAME=OurCI e2e", "GIT_COMMITTER_EMAIL=e2e@ourci.invalid")
	if err := scripts.WriteSeedRepo(r.work); err != nil {
		t.Fatal(err)
	}
	r.git(t, "", "init", "-q", "-b", "main", r.work)
	r.git(t, "", "init", "-q", "--bare", "-b", "main", r.bare)
	r.commit(t, "v1")
	return r
}

// git runs git in dir ("" for none) and returns its trimmed stdout.
func (r *seedRepo) git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = r.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// version is the content of ci/VERSION at the commit named name.
func (r *seedRepo) version(name string) string {
	return "ourci-e2e seed " + name + " " + r.nonce
}

// commit writes ci/VERSION for name, commits everything on main, pushes main
// to the bare repository and returns the new commit.
func (r *seedRepo) commit(t *testing.T, name string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.work, "ci", "VERSION"), []byte(r.version(name)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.git(t, r.work, "add", "-A")
	r.git(t, r.work, "commit", "-q", "-m", "seed repository "+name)
	r.git(t, r.work, "push", "-q", r.bare, "main")
	sha := r.git(t, r.bare, "rev-parse", "main")
	if local := r.git(t, r.work, "rev-parse", "HEAD"); local != sha {
		t.Fatalf("pushed %s but the bare repository's main is %s", local, sha)
	}
	return sha
}

// TestDockerTopicLimits: a Docker topic's --topic-memory, --topic-cpus and
// --topic-pids reach its containers' cgroups.
func TestDockerTopicLimits(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	dockerImages(t)
	bin := dockerNodeBinary(t)
	name := dockerNodeName("limits1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic}}},
		map[string][]string{name: {"--topic-memory", buildTopic + "=256m", "--topic-cpus", buildTopic + "=1.5", "--topic-pids", buildTopic + "=100"}})
	probe := strings.Join([]string{
		`echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"`,
		`echo "cpu=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")"`,
		`echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"`,
	}, "; ")
	job, task := m.spawn(t, 0, "--image", dockerBaseImage, "-t", buildTopic, "--", probe)
	v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	log := taskLog(t, m, 0, task)
	if v.Job.Status != "passed" {
		t.Errorf("want the job passed, got %v\n%s", v, log)
	}
	for _, want := range []string{fmt.Sprintf("memory=%d\n", 256<<20), "cpu=150000 100000\n", "pids=100\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the task's log lacks %q:\n%s", want, log)
		}
	}
}

// TestDockerCancelAndTimeoutLeaveNoContainer: cancelling a job whose Docker
// task runs, a Docker task running past its --timeout, and a job running past
// its deadline stop and remove the task's container.
func TestDockerCancelAndTimeoutLeaveNoContainer(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	dockerImages(t)
	bin := dockerNodeBinary(t)
	name := dockerNodeName("stop1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic}, Slots: 2}}, nil)
	events := watchDockerEvents(t, name)
	const cmd = "echo sleeping in the container; sleep 1000"

	t.Run("cancel", func(t *testing.T) {
		job, task := m.spawn(t, 0, "--image", dockerBaseImage, "-t", buildTopic, "--", cmd)
		var ids []string
		wait.For(t, time.Minute, "the container of the task to be cancelled", func() (bool, string) {
			var err error
			if ids, err = dockerPS(labelTask + "=" + task); err != nil {
				return false, err.Error()
			}
			v, err := jobStatusAs[dockerJobView](t, m, 0, job)
			if err != nil {
				return false, err.Error()
			}
			tv, _ := v.task(task)
			return len(ids) == 1 && tv.State == "running", fmt.Sprintf("want task %s running in one container, containers %v, %v", task, ids, v)
		})
		start := time.Now()
		if r := m.run(t, "cancel", job); r.code != 0 {
			t.Fatalf("cancel %s: %v", job, r)
		}
		v := waitJobAs[dockerJobView](t, m, 0, job, 30*time.Second, "the job to close", closed)
		tv, _ := v.task(task)
		if v.Job.Status != "error" || tv.State != "cancelled" {
			t.Errorf("after cancel: want job status error and task cancelled, got %v", v)
		}
		gone := waitNoContainer(t, labelJob+"="+job, 30*time.Second)
		t.Logf("container %s of the cancelled task gone %v after the cancel (%v after the job closed)",
			short12(ids[0]), time.Since(start).Round(time.Millisecond), gone.Round(time.Millisecond))
		events.waitTaskContainer(t, task, 30*time.Second, "create", "start", "die", "destroy")
		if log := taskLog(t, m, 0, task); !strings.Contains(log, "sleeping in the container") {
			t.Errorf("the cancelled task's log lacks its output:\n%s", log)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		job, task := m.spawn(t, 0, "--timeout", "2s", "--image", dockerBaseImage, "-t", buildTopic, "--", cmd)
		v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
		tv, _ := v.task(task)
		if tv.State != "timed_out" {
			t.Errorf("want task %s timed_out, got %v", task, v)
		}
		gone := waitNoContainer(t, labelJob+"="+job, 30*time.Second)
		t.Logf("task timed out and its container is gone %v after the spawn (%v after the job closed); job status %q",
			time.Since(start).Round(time.Millisecond), gone.Round(time.Millisecond), v.Job.Status)
		// The container did run: it was made, started, stopped and removed.
		events.waitTaskContainer(t, task, 30*time.Second, "create", "start", "die", "destroy")
		if log := taskLog(t, m, 0, task); !strings.Contains(log, "sleeping in the container") || !strings.Contains(log, "timed out after 2s") {
			t.Errorf("the timed-out task's log lacks its output or the timeout note:\n%s", log)
		}
	})

	t.Run("job deadline", func(t *testing.T) {
		start := time.Now()
		job, task := m.spawn(t, 0, "--job-timeout", "3s", "--image", dockerBaseImage, "-t", buildTopic, "--", cmd)
		v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
		tv, _ := v.task(task)
		if v.Job.Status != "error" || tv.State != "cancelled" {
			t.Errorf("past the job's deadline: want job status error and task cancelled, got %v", v)
		}
		gone := waitNoContainer(t, labelJob+"="+job, 30*time.Second)
		t.Logf("job closed by its deadline (reason %q) and its container is gone %v after the spawn (%v after the job closed)",
			v.Job.Reason, time.Since(start).Round(time.Millisecond), gone.Round(time.Millisecond))
		events.waitTaskContainer(t, task, 30*time.Second, "create", "start", "die", "destroy")
	})
}

// TestDockerSweepAfterNodeCrash: a node killed while its task runs leaves
// the task's container running; the node started again removes it before it
// runs anything, and the task's next attempt runs in a new container.
func TestDockerSweepAfterNodeCrash(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	dockerImages(t)
	bin := dockerNodeBinary(t)
	name := dockerNodeName("crash1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic}, Slots: 1}}, nil)
	job, task := m.spawn(t, 0, "--image", dockerBaseImage, "-t", buildTopic, "--", "sleep 1000")

	running := func(attempt int) string {
		t.Helper()
		var ids []string
		wait.For(t, time.Minute, "one running container of the attempt", func() (bool, string) {
			out, err := dockerCmd(30*time.Second, "docker", "ps", "-q", "--no-trunc", "--filter", "status=running",
				"--filter", "label="+labelTask+"="+task, "--filter", "label=ourci.attempt="+strconv.Itoa(attempt))
			if err != nil {
				return false, err.Error()
			}
			ids = strings.Fields(out)
			return len(ids) == 1, fmt.Sprintf("want one running container of task %s attempt %d, got %v", task, attempt, ids)
		})
		return ids[0]
	}
	first := running(1)

	n := m.nodes[0]
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n.exited
	if out, err := dockerCmd(30*time.Second, "docker", "inspect", "--format", "{{.State.Status}}", first); err != nil || strings.TrimSpace(out) != "running" {
		t.Fatalf("after its node was killed, container %s is %q (%v); want it still running, as a crash leaves it", short12(first), strings.TrimSpace(out), err)
	}

	restart := time.Now()
	n.logPath = filepath.Join(m.dir, name+".restarted.log")
	m.startNode(t, 0)
	wait.For(t, time.Minute, "the restarted mesh to be ready", m.ready(t))
	wait.For(t, 30*time.Second, "the crashed run's container to be removed", func() (bool, string) {
		out, err := dockerCmd(30*time.Second, "docker", "ps", "-a", "-q", "--filter", "id="+first)
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(out) == "", fmt.Sprintf("container %s of the crashed node is still there", short12(first))
	})
	t.Logf("the restarted node removed the crashed run's container %s within %v", short12(first), time.Since(restart).Round(time.Millisecond))

	second := running(2)
	if second == first {
		t.Fatalf("attempt 2 runs in the container of attempt 1")
	}
	if r := m.run(t, "cancel", job); r.code != 0 {
		t.Fatalf("cancel %s: %v", job, r)
	}
	waitJobAs[dockerJobView](t, m, 0, job, 30*time.Second, "the job to close", closed)
	waitNoContainer(t, labelJob+"="+job, 30*time.Second)
}

// TestDockerMissingImage: a task naming an image the node does not have
// fails with a message naming the image and the node, and no container is
// made.
func TestDockerMissingImage(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	bin := dockerNodeBinary(t)
	if out, err := dockerCmd(30*time.Second, "docker", "image", "inspect", "--format", "{{.Id}}", dockerMissingImage); err == nil {
		t.Fatalf("image %s exists on this engine (%s): remove it, this test needs it missing", dockerMissingImage, strings.TrimSpace(out))
	}
	name := dockerNodeName("noimg1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic}}}, nil)
	events := watchDockerEvents(t, name)

	job, task := m.spawn(t, 0, "--image", dockerMissingImage, "-t", buildTopic, "--", "echo must not run")
	v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	tv, _ := v.task(task)
	// A missing image is the infrastructure's failure, not the code's: it is
	// retried (on the one node there is), then infra_failed, the job error.
	if tv.State != "infra_failed" || v.Job.Status != "error" || tv.Node != name {
		t.Errorf("want task %s infra_failed on %s and the job error, got %v", task, name, v)
	}
	log := taskLog(t, m, 0, task)
	for _, want := range []string{dockerMissingImage, name} {
		if !strings.Contains(tv.Error, want) && !strings.Contains(log, want) {
			t.Errorf("neither the task's error %q nor its log names %q:\n%s", tv.Error, want, log)
		}
	}
	if strings.Contains(log, "must not run\n") {
		t.Errorf("the task's command ran:\n%s", log)
	}
	t.Logf("task error: %s", tv.Error)
	if ids, err := dockerPS(labelJob + "=" + job); err != nil || len(ids) != 0 {
		t.Errorf("containers of job %s: %v %v, want none", job, ids, err)
	}
	if evs := events.forLabel(labelJob, job); len(evs) != 0 {
		t.Errorf("want no container made for job %s, got events %v", job, actions(evs))
	}
}

// TestHostTaskGetsCheckout: a task on a host topic of a job opened with
// --repo/--rev runs in a checkout of the pinned commit too: a branch gives a
// local branch at it, a full SHA a detached HEAD.
func TestHostTaskGetsCheckout(t *testing.T) {
	t.Parallel()
	repo := makeSeedRepo(t)
	v1 := repo.git(t, repo.bare, "rev-parse", "main")
	v2 := repo.commit(t, "v2")
	const topic = "e2e/checkout"
	m := startMesh(t, []nodeSpec{{Name: "node1", Topics: []string{topic}, Slots: 2}})
	cmd := `echo "VERSION=$(cat ci/VERSION)"; echo "BRANCH=${BRANCH:-} OURCI_BRANCH=${OURCI_BRANCH:-} OURCI_SHA=$OURCI_SHA OURCI_REPO=$OURCI_REPO"; ` +
		`echo "HEAD=$(git rev-parse HEAD) ref=$(git rev-parse --abbrev-ref HEAD)"; ` +
		`[ -z "$(git status --porcelain)" ] && echo "clean checkout" && [ -x ci/all.sh ] && echo "ci/all.sh is executable"`
	for _, c := range []struct {
		rev, sha, version, branch, ref string
	}{
		{"main", v2, repo.version("v2"), "main", "main"},
		{v1, v1, repo.version("v1"), "", "HEAD"},
	} {
		job, task := m.spawn(t, 0, "--repo", repo.bare, "--rev", c.rev, "-t", topic, "--", cmd)
		v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
		tv, _ := v.task(task)
		log := taskLog(t, m, 0, task)
		if v.Job.Status != "passed" || tv.State != "passed" {
			t.Errorf("--rev %s: want the job and task passed, got %v\n%s", c.rev, v, log)
		}
		for _, want := range []string{
			fmt.Sprintf("[ourci] checked out %s at %s", repo.bare, c.sha),
			"VERSION=" + c.version + "\n",
			fmt.Sprintf("BRANCH=%s OURCI_BRANCH=%s OURCI_SHA=%s OURCI_REPO=%s\n", c.branch, c.branch, c.sha, repo.bare),
			fmt.Sprintf("HEAD=%s ref=%s\n", c.sha, c.ref),
			"clean checkout\n", "ci/all.sh is executable\n",
		} {
			if !strings.Contains(log, want) {
				t.Errorf("--rev %s: log lacks %q:\n%s", c.rev, want, log)
			}
		}
	}
}
