package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/scripts"
)

const (
	buildTopic = "ourci/build/docker"
	testTopic  = "ourci/test/esp-12e"
)

// TestSeedPipeline runs the seed's workflow (scripts/example) on three nodes:
// node1 and node2 build, node3 runs the esp8266 hardware-test agent.
func TestSeedPipeline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := scripts.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	ci := filepath.Join(dir, "example", "ci")
	agent := filepath.Join(dir, "example", "agents", "esp8266_agent.sh")
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{buildTopic}, Slots: 4},
		{Name: "node2", Topics: []string{buildTopic}, Slots: 4},
		{Name: "node3", Topics: []string{testTopic + "=" + agent}},
	})

	job, root := m.spawn(t, 1, "-t", buildTopic, "--", ci+"/all.sh")
	v := m.waitClosed(t, 1, job, 2*time.Minute)

	// Name every task by its topic and args, and check the tree against the seed's.
	byLabel := checkSeedTree(t, v.Tasks, func(tv taskView) taskView { return tv }, ci, root)
	for l, tv := range byLabel {
		isTest := strings.HasPrefix(l, "test ")
		if variant, ok := strings.CutPrefix(l, "test "); ok {
			if got, want := strings.Join(tv.Args, " "), handOffArgs(variant); got != want {
				t.Errorf("%s: args %q, want %q", l, got, want)
			}
		}
		switch {
		case isTest && (tv.Topic != testTopic || tv.Node != "node3"):
			t.Errorf("%s: topic %q node %q, want %s on node3", l, tv.Topic, tv.Node, testTopic)
		case !isTest && (tv.Topic != buildTopic || (tv.Node != "node1" && tv.Node != "node2")):
			t.Errorf("%s: topic %q node %q, want %s on node1 or node2", l, tv.Topic, tv.Node, buildTopic)
		}
	}
	if v.Job.Status != "passed" {
		t.Errorf("job status %q, want passed: %v", v.Job.Status, v)
	}

	// The test tasks' logs hold the agent's output, which names its args, and
	// the test driver's verdict on the firmware it fetched from the blobs.
	for _, variant := range []string{"esp8266", "esp8266-ota"} {
		checkHandOffLog(t, m, 1, byLabel["test "+variant], variant)
	}

	// The text form of the job's status lists every task.
	r := m.runOn(t, 0, "status", job)
	if r.code != 0 {
		t.Fatalf("status %s: %v", job, r)
	}
	for l, tv := range byLabel {
		if !strings.Contains(r.stdout, tv.ID) {
			t.Errorf("status %s does not show task %s (%s):\n%s", job, tv.ID, l, r.stdout)
		}
	}
}

// handOffArgs is the args of the hardware test of an esp8266 VARIANT: the job's
// blob names of its firmware and of the test driver.
func handOffArgs(variant string) string {
	return "fw-" + variant + ".tar.gz test-driver-" + variant + ".sh"
}

// checkHandOffLog waits until the log of hardware test tv, read through node
// i, shows that the agent got the blob names, fetched the driver, and that
// the driver fetched the firmware of variant and verified it.
func checkHandOffLog(t *testing.T, m *mesh, i int, tv taskView, variant string) {
	t.Helper()
	lines := []string{
		"esp8266_agent: args: " + handOffArgs(variant) + "\n",
		"esp8266_test_driver: the board runs: firmware " + variant + " OTA=",
		"esp8266_test_driver: PASS " + variant + ": firmware verified",
		"esp8266_agent: test script exited 0",
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		r := m.runOn(t, i, "logs", tv.ID)
		for _, line := range lines {
			if r.code != 0 || !strings.Contains(r.stdout, line) {
				return false, fmt.Sprintf("logs %s on %s should contain %q: %v", tv.ID, m.nodes[i].spec.Name, line, r)
			}
		}
		return true, ""
	})
}

// seedTree is the example pipeline's tree: each task's label and its
// parent's.
var seedTree = map[string]string{
	"all": "", "v7": "all", "mongoose": "all", "cloud": "all", "fw": "all",
	"posix": "fw", "esp8266": "fw", "esp8266-ota": "fw",
	"test esp8266": "esp8266", "test esp8266-ota": "esp8266-ota",
}

// checkSeedTree checks that a closed job's tasks are exactly the seed's
// tree, rooted at the task spawn printed, each passed with exit code 0
// under the right parent, and returns them by label (seedLabel with ci).
func checkSeedTree[T any](t *testing.T, tasks []T, view func(T) taskView, ci, root string) map[string]T {
	t.Helper()
	label := map[string]string{} // task id -> label
	byLabel := map[string]T{}
	for _, task := range tasks {
		tv := view(task)
		l := seedLabel(ci, tv)
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
		if tv.State != "passed" || tv.ExitCode == nil || *tv.ExitCode != 0 {
			t.Errorf("%s: state %q exit_code %s, want passed and 0 (%v)", l, tv.State, tv.exit(), tv)
		}
	}
	return byLabel
}

// seedLabel names a task of the example pipeline by its topic and args:
// all, v7, ..., esp8266-ota for builds, "test VARIANT" for hardware tests
// (whose first arg is the firmware's blob name, fw-VARIANT.tar.gz).
func seedLabel(ci string, tv taskView) string {
	if tv.Topic == testTopic && len(tv.Args) > 0 {
		return "test " + strings.TrimSuffix(strings.TrimPrefix(tv.Args[0], "fw-"), ".tar.gz")
	}
	if len(tv.Args) != 1 {
		return "?" + strings.Join(tv.Args, " ")
	}
	switch tv.Args[0] {
	case "OTA=1 " + ci + "/fw/esp8266.sh":
		return "esp8266-ota"
	case ci + "/fw/esp8266.sh":
		return "esp8266"
	case ci + "/fw/posix.sh":
		return "posix"
	}
	name, ok := strings.CutPrefix(tv.Args[0], ci+"/")
	if !ok {
		return "?" + tv.Args[0]
	}
	return strings.TrimSuffix(name, ".sh")
}
