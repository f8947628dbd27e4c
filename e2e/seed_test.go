package e2e

// The seed's pipeline as its design doc prints it (scripts/example/seed:
// ci/all.sh, v7.sh, fw.sh, fw/esp8266.sh, the test driver, and agent B's
// ourci_esp8266_agent.sh, with the mends marked there) on real nodes: the
// builds in Docker here (TestSeedDocker), on the host in pipeline_test.go
// and blobs_test.go. The rig is always started with the seed's own line,
// `ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh`.

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/scripts"

	"github.com/ourci/ourci/node/nodetest/wait"
)

const (
	// seedBaseImage is BASE_SDK of the seed's pipeline: dockerBaseImage
	// plus what its scripts run, make and git (this machine's, with their
	// libraries), and the stand-in's MAKE and CI_BRANCH.
	seedBaseImage = "ourci-e2e-seed-base:1"
	// seedESPImage is ESP_SDK: seedBaseImage plus /opt/esp-sdk/VERSION
	// (testdata/docker/esp), which the esp8266 build writes into the firmware.
	seedESPImage = "ourci-e2e-seed-esp:1"
)

// seedImages makes the seed's two images once per test binary (on top of
// dockerImages') and returns the ESP SDK's version.
func seedImages(t *testing.T) (espVersion string) {
	t.Helper()
	espVersion = dockerImages(t)
	seedImgs.once.Do(func() {
		start := time.Now()
		seedImgs.err = buildSeedImages(t.TempDir())
		seedImgs.took = time.Since(start)
	})
	if seedImgs.err != nil {
		t.Fatalf("making the seed's images: %v", seedImgs.err)
	}
	t.Logf("images %s and %s ready (made or found in %v)", seedBaseImage, seedESPImage, seedImgs.took.Round(time.Millisecond))
	return espVersion
}

var seedImgs struct {
	once sync.Once
	took time.Duration
	err  error
}

// buildSeedImages builds seedBaseImage from a context in dir holding this
// machine's make and git with the libraries ldd lists, and the stand-in's
// build commands; then seedESPImage from testdata/docker/esp on top of it.
// Docker's cache makes a rebuild of the same files quick.
func buildSeedImages(dir string) error {
	root := filepath.Join(dir, "root")
	for _, tool := range []string{"make", "git"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			return fmt.Errorf("the seed's scripts run %s in their images, and this machine has none to copy: %v", tool, err)
		}
		out, err := exec.Command("ldd", path).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "not a dynamic executable") {
			return fmt.Errorf("ldd %s: %v: %s", path, err, out)
		}
		files := []string{path}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f) // through links: the image gets the file at each name
			if err != nil {
				return err
			}
			to := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(to, data, 0o755); err != nil {
				return err
			}
		}
	}
	if err := scripts.WriteSub(scripts.BuildBinDir, filepath.Join(root, "usr", "local", "bin")); err != nil {
		return err
	}
	dockerfile := "ARG BASE=" + dockerBaseImage + "\nFROM ${BASE}\nCOPY root/ /\nLABEL ourci.e2e=seed-sdk\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	if out, err := dockerCmd(5*time.Minute, "docker", "build", "-q", "--build-arg", "BASE="+dockerBaseImage, "-t", seedBaseImage, dir); err != nil {
		return fmt.Errorf("docker build -t %s: %v\n%s", seedBaseImage, err, out)
	}
	espDir, err := filepath.Abs(filepath.Join("testdata", "docker", "esp"))
	if err != nil {
		return err
	}
	if out, err := dockerCmd(5*time.Minute, "docker", "build", "-q", "--build-arg", "BASE="+seedBaseImage, "-t", seedESPImage, espDir); err != nil {
		return fmt.Errorf("docker build -t %s %s: %v\n%s", seedESPImage, espDir, err, out)
	}
	return nil
}

// rigNode is the seed's test rig, shepetovka: a node started in a
// directory holding the agent script, as the seed starts it,
//
//	ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh
//
// through a link named ourci_agent to bin, with the simulated board's
// tools on its PATH, and no --slots (the agent's default is one).
func rigNode(t *testing.T, name, bin string) nodeSpec {
	t.Helper()
	rig := filepath.Join(t.TempDir(), "shepetovka")
	agent, err := scripts.WriteRig(rig)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ourci_agent")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	return nodeSpec{
		Name: name, Topics: []string{testTopic + "=" + agent}, Dir: rig,
		Command: []string{link, "-t", testTopic, scripts.AgentScript},
		Env:     []string{"PATH=" + filepath.Join(rig, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")},
	}
}

// buildEnv is the environment of a build node on the host: the stand-in's
// MAKE and CI_BRANCH on its PATH (which the node gives its tasks).
func buildEnv(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	if err := scripts.WriteSub(scripts.BuildBinDir, dir); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")}
}

// handOffArgs is the args of the hardware test of an esp8266 VARIANT: the
// job's blob names of its firmware and of the test driver (FW_BLOB and
// SCRIPT_BLOB, set where the seed's esp8266.sh elides them).
func handOffArgs(variant string) string {
	return "fw-" + variant + ".tar.gz test-driver-" + variant + ".sh"
}

// variantOTA is the OTA setting of an esp8266 variant.
func variantOTA(variant string) string {
	if variant == "esp8266-ota" {
		return "1"
	}
	return "0"
}

// checkHandOffLog waits until the log of hardware test tv, read through
// node i, shows that the rig's agent ran with the two blob names, that the
// driver it fetched by the second ran, and that the firmware it fetched by
// the first (built with OTA for variant, SDK sdk, ci/VERSION version) passed
// its test on the board.
func checkHandOffLog(t *testing.T, m *mesh, i int, tv taskView, variant, sdk, version string) {
	t.Helper()
	ota := variantOTA(variant)
	lines := []string{
		scripts.AgentScript + ` ["fw-` + variant + `.tar.gz" "test-driver-` + variant + `.sh"]` + "\n",
		"firmware/0x00000.bin\n", // tar's listing of what the driver fetched by the first name
		"esptool.sh: wrote ",
		`board: ok   expect("ota=` + ota + `")`,
		"PASS: 3 of 3 expectations of test.js hold\n",
		"firmware: board=esp-12e ota=" + ota + " sdk=" + sdk + " version=" + version + "\n",
		"[ourci] exit code 0\n",
	}
	wait.For(t, 30*time.Second, "the task's log lines", func() (bool, string) {
		r := m.runOn(t, i, "logs", tv.ID)
		for _, line := range lines {
			if r.code != 0 || !strings.Contains(r.stdout, line) {
				return false, fmt.Sprintf("logs %s on %s should contain %q: %v", tv.ID, m.nodes[i].spec.Name, line, r)
			}
		}
		return true, ""
	})
}

// checkV7Log checks that the seed's ci/v7.sh ran each of its lines against
// the stand-in tree (CI_BRANCH is main: no report_footprint).
func checkV7Log(t *testing.T, log string) {
	t.Helper()
	for _, line := range []string{
		"v7: tests: compile: 3 of 3 ECMA-262 tests pass\n", "v7: w: ", "v7: build_variants: ecma ok\n",
		"v7: docs: ", "v7: v7.c amalgamated", "v7: difftest ok   100/7 = 14\n",
		"v7: run: v7 -e '6*7' with CFLAGS_EXTRA=-m32: 42\n", "v7: examples: hello ok\n",
		"Updated 1 path from the index\n", // git checkout v7/tests/ecma_report.txt, which compile rewrote
	} {
		if !strings.Contains(log, line) {
			t.Errorf("v7: log lacks %q:\n%s", line, log)
		}
	}
	if strings.Contains(log, "not found") {
		t.Errorf("v7: a command was not found:\n%s", log)
	}
}

// seedTree is the seed's tree: each task's label and its parent's.
var seedTree = map[string]string{
	"all": "", "v7": "all", "mongoose": "all", "cloud": "all", "fw": "all",
	"posix": "fw", "esp8266": "fw", "esp8266-ota": "fw",
	"test esp8266": "esp8266", "test esp8266-ota": "esp8266-ota",
}

// labelSeedTree names a job's tasks by seedLabel, checks that they are
// exactly the seed's tree rooted at the task spawn printed, each under the
// right parent, and returns them by label.
func labelSeedTree[T any](t *testing.T, tasks []T, view func(T) taskView, root string) map[string]T {
	t.Helper()
	label := map[string]string{} // task id -> label
	byLabel := map[string]T{}
	for _, task := range tasks {
		tv := view(task)
		l := seedLabel(tv)
		if _, known := seedTree[l]; !known {
			t.Errorf("unexpected task %v", tv)
			continue
		}
		if _, dup := byLabel[l]; dup {
			t.Errorf("task %q appears twice: %v", l, tv)
		}
		label[tv.ID], byLabel[l] = l, task
	}
	if len(tasks) != 10 || len(byLabel) != len(seedTree) {
		t.Fatalf("want exactly the 10 tasks of the seed's tree, got %v", tasks)
	}
	if id := view(byLabel["all"]).ID; id != root {
		t.Errorf("root task is %s, spawn printed %s", id, root)
	}
	for l, task := range byLabel {
		tv := view(task)
		if got := label[tv.Parent]; got != seedTree[l] || (seedTree[l] == "" && tv.Parent != "") {
			t.Errorf("%s: parent %q (%s), want %q", l, tv.Parent, got, seedTree[l])
		}
	}
	return byLabel
}

// checkSeedTree is labelSeedTree of a job whose every task passed with
// exit code 0.
func checkSeedTree[T any](t *testing.T, tasks []T, view func(T) taskView, root string) map[string]T {
	t.Helper()
	byLabel := labelSeedTree(t, tasks, view, root)
	for l, task := range byLabel {
		if tv := view(task); tv.State != "passed" || tv.ExitCode == nil || *tv.ExitCode != 0 {
			t.Errorf("%s: state %q exit_code %s, want passed and 0 (%v)", l, tv.State, tv.exit(), tv)
		}
	}
	return byLabel
}

// seedLabel names a task of the seed's pipeline by its topic and args: all,
// v7, ..., esp8266-ota for builds, "test VARIANT" for hardware tests (whose
// first arg is the firmware's blob name, fw-VARIANT.tar.gz).
func seedLabel(tv taskView) string {
	if tv.Topic == testTopic && len(tv.Args) > 0 {
		return "test " + strings.TrimSuffix(strings.TrimPrefix(tv.Args[0], "fw-"), ".tar.gz")
	}
	if len(tv.Args) != 1 {
		return "?" + strings.Join(tv.Args, " ")
	}
	switch tv.Args[0] {
	case "OTA=1 ci/fw/esp8266.sh":
		return "esp8266-ota"
	case "ci/fw/esp8266.sh":
		return "esp8266"
	case "ci/fw/posix.sh":
		return "posix"
	}
	name, ok := strings.CutPrefix(tv.Args[0], "ci/")
	if !ok {
		return "?" + tv.Args[0]
	}
	return strings.TrimSuffix(name, ".sh")
}

// breakFirmware commits a change that makes the firmware fail its board
// test (its HTTP server moves to another port) and returns the commit.
func (r *seedRepo) breakFirmware(t *testing.T) string {
	t.Helper()
	p := filepath.Join(r.work, "fw", "src", "main.c")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.ReplaceAll(string(data), "mg_serve_http(80)", "mg_serve_http(8080)")
	if broken == string(data) {
		t.Fatalf("%s has no mg_serve_http(80) to break", p)
	}
	if err := os.WriteFile(p, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	return r.commit(t, "broken")
}

// TestSeedDocker runs the seed's scripts as printed on three nodes: seed1
// and seed2 serve ourci/build/docker in Docker, in the seed's BASE_SDK and
// ESP_SDK images; seed3 is the seed's shepetovka, started with the seed's
// line `ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh`. The job,
// on a repository whose commit the leader pins, passes with the seed's ten
// tasks, each build in the image its parent named (its container made and
// removed), and each hardware test gets the firmware blob and the driver by
// name. Then a commit that breaks the firmware fails fast: the job turns
// failed at the first failed hardware test while the other is still to
// run, and that one still reports into it.
func TestSeedDocker(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	espVersion := seedImages(t)
	bin := dockerNodeBinary(t)
	repo := makeSeedRepo(t)
	sha := repo.commit(t, "v2") // what the first job must build

	n1, n2, n3 := dockerNodeName("seed1"), dockerNodeName("seed2"), dockerNodeName("seed3")
	m := startDockerMesh(t, bin, []nodeSpec{
		{Name: n1, Topics: []string{dockerTopic}, Slots: 4},
		{Name: n2, Topics: []string{dockerTopic}, Slots: 4},
		rigNode(t, n3, bin),
	}, nil)
	events := map[string]*dockerEvents{n1: watchDockerEvents(t, n1), n2: watchDockerEvents(t, n2)}
	// The job's first spawn, as the seed's master sends it: ci/all.sh in
	// the base image, with the two image names its scripts use.
	spawnArgs := []string{"--repo", repo.bare, "--rev", "main", "--image", seedBaseImage,
		"--env", "BASE_SDK=" + seedBaseImage, "--env", "ESP_SDK=" + seedESPImage, "-t", buildTopic, "--", "ci/all.sh"}

	start := time.Now()
	job, root := m.spawn(t, 2, spawnArgs...)
	// The leader pinned main when it opened the job: a push now must not
	// reach any of its tasks, whenever their node fetches.
	later := repo.breakFirmware(t)
	v := waitJobAs[dockerJobView](t, m, 0, job, 3*time.Minute, "the job to close", closed)
	t.Logf("job %s closed %s after %v (pinned %s; main moved on to %s right after the spawn)",
		job, v.Job.Status, time.Since(start).Round(time.Millisecond), sha, later)
	if s := v.Job.Source; s.Repo != repo.bare || s.SHA != sha || s.Branch != "main" {
		t.Errorf("job source %+v, want repo %s sha %s branch main", s, repo.bare, sha)
	}
	if v.Job.Status != "passed" {
		t.Errorf("job status %q, want passed: %v", v.Job.Status, v)
	}
	byLabel := checkSeedTree(t, v.Tasks, func(tv dockerTaskView) taskView { return tv.taskView }, root)

	checkedOut := fmt.Sprintf("[ourci] checked out %s at %s", repo.bare, sha)
	for _, l := range slices.Sorted(maps.Keys(byLabel)) {
		tv := byLabel[l]
		t.Logf("%-16s %s on %-13s image %-22q started %6v after its spawn, ran %6v", l, tv.ID, tv.Node, tv.Image,
			tv.StartedAt.Sub(tv.CreatedAt).Round(time.Millisecond), tv.FinishedAt.Sub(tv.StartedAt).Round(time.Millisecond))
		log := taskLog(t, m, 0, tv.ID)
		if !strings.Contains(log, checkedOut) {
			t.Errorf("%s (%s on %s): log lacks %q:\n%s", l, tv.ID, tv.Node, checkedOut, log)
		}
		if variant, isTest := strings.CutPrefix(l, "test "); isTest {
			if tv.Topic != testTopic || tv.Node != n3 || tv.Image != "" {
				t.Errorf("%s: topic %q node %q image %q, want %s on %s, no image", l, tv.Topic, tv.Node, tv.Image, testTopic, n3)
			}
			if got, want := strings.Join(tv.Args, " "), handOffArgs(variant); got != want {
				t.Errorf("%s: args %q, want %q", l, got, want)
			}
			checkHandOffLog(t, m, 0, tv.taskView, variant, espVersion, repo.version("v2"))
			continue
		}

		// A build: in Docker on seed1 or seed2, in the image its parent
		// named, with one argument (spawn_task's first was the image).
		image := seedBaseImage
		if strings.HasPrefix(l, "esp8266") {
			image = seedESPImage
		}
		if tv.Topic != buildTopic || (tv.Node != n1 && tv.Node != n2) || tv.Image != image || len(tv.Args) != 1 {
			t.Errorf("%s: topic %q node %q image %q args %q, want %s on %s or %s in %s, one argument",
				l, tv.Topic, tv.Node, tv.Image, tv.Args, buildTopic, n1, n2, image)
		}
		switch l {
		case "v7":
			checkV7Log(t, log)
		case "esp8266", "esp8266-ota":
			if line := fmt.Sprintf("esp8266: firmware/0x00000.bin for esp-12e, OTA=%s, SDK %s,", variantOTA(l), espVersion); !strings.Contains(log, line) {
				t.Errorf("%s: log lacks %q:\n%s", l, line, log)
			}
		}
		evs := events[tv.Node].waitTaskContainer(t, tv.ID, 30*time.Second, "create", "start", "die", "destroy")
		for _, e := range evs {
			a := e.Actor.Attributes
			if e.Action == "create" && (a["image"] != image || a[labelJob] != job || a["ourci.attempt"] != "1" || a[labelNode] != tv.Node) {
				t.Errorf("%s: container %s created with attributes %v, want image %s, %s=%s, ourci.attempt=1, %s=%s",
					l, short12(e.Actor.ID), a, image, labelJob, job, labelNode, tv.Node)
			}
		}
	}
	took := waitNoContainer(t, labelJob+"="+job, 30*time.Second)
	t.Logf("no container of job %s left (%v after the job closed)", job, took.Round(time.Millisecond))

	// Fail fast: main now holds the broken firmware. The job turns failed
	// at the first failed hardware test, while it is still open: the rig
	// (one slot) has the other test still to run, which then reports into
	// it, failed too; the builds all pass.
	job2, root2 := m.spawn(t, 2, spawnArgs...)
	first := waitJobAs[dockerJobView](t, m, 0, job2, 3*time.Minute, "the job to turn failed", func(v dockerJobView) bool {
		return v.Job.Status != "pending" || closed(v)
	})
	if first.Job.Status != "failed" || closed(first) {
		t.Errorf("first seen %s/%s, want failed while still open: %v", first.Job.State, first.Job.Status, first)
	}
	var failed, open []string
	for _, tv := range first.Tasks {
		switch tv.State {
		case "failed":
			failed = append(failed, seedLabel(tv.taskView))
		case "passed":
		default:
			open = append(open, seedLabel(tv.taskView)+" "+tv.State)
		}
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "test ") || len(open) == 0 && len(first.Tasks) == 10 {
		t.Errorf("when the job turned failed: failed %q, not done %q of %d tasks; want one hardware test failed and the rest of the tree not done", failed, open, len(first.Tasks))
	}
	t.Logf("job %s turned failed at %q while %q were not done", job2, failed, open)
	v2 := waitJobAs[dockerJobView](t, m, 0, job2, 3*time.Minute, "the job to close", closed)
	if v2.Job.Status != "failed" || v2.Job.Source.SHA != later {
		t.Errorf("job %s: status %q at %s, want failed at %s: %v", job2, v2.Job.Status, v2.Job.Source.SHA, later, v2)
	}
	byLabel2 := labelSeedTree(t, v2.Tasks, func(tv dockerTaskView) taskView { return tv.taskView }, root2)
	for l, tv := range byLabel2 {
		variant, isTest := strings.CutPrefix(l, "test ")
		if want := map[bool]string{true: "failed", false: "passed"}[isTest]; tv.State != want {
			t.Errorf("%s: %s, want %s: %v", l, tv.State, want, tv)
		}
		if isTest {
			log := taskLog(t, m, 0, tv.ID)
			for _, line := range []string{
				scripts.AgentScript + ` ["` + strings.ReplaceAll(handOffArgs(variant), " ", `" "`) + `"]`,
				`board: FAIL expect("mg_serve_http(80);")`, "the board crashed and serves no results",
			} {
				if !strings.Contains(log, line) {
					t.Errorf("%s: log lacks %q:\n%s", l, line, log)
				}
			}
		}
	}
}
