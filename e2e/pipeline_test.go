package e2e

import (
	"strings"
	"testing"
	"time"
)

const (
	buildTopic = "ourci/build/docker"
	testTopic  = "ourci/test/esp-12e"
)

// TestSeedPipeline runs the seed's scripts as printed (scripts/example/seed)
// on three nodes without Docker: node1 and node2 build on the host (so the
// seed's ${BASE_SDK} and ${ESP_SDK} are left unset and vanish from
// spawn_task's arguments), node3 is the rig, started as
// `ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh`.
func TestSeedPipeline(t *testing.T) {
	t.Parallel()
	repo := makeSeedRepo(t)
	env := buildEnv(t)
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{buildTopic}, Slots: 4, Env: env},
		{Name: "node2", Topics: []string{buildTopic}, Slots: 4, Env: env},
		rigNode(t, "node3", binPath),
	})

	job, root := m.spawn(t, 1, "--repo", repo.bare, "--rev", "main", "-t", buildTopic, "--", "ci/all.sh")
	v := m.waitClosed(t, 1, job, 2*time.Minute)

	// Name every task by its topic and args, and check the tree against the seed's.
	byLabel := checkSeedTree(t, v.Tasks, func(tv taskView) taskView { return tv }, root)
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
	checkV7Log(t, taskLog(t, m, 0, byLabel["v7"].ID))

	// The test tasks' logs show the agent's args, the blob names, and the
	// driver's verdict on the firmware it fetched (built on the host: no SDK).
	for _, variant := range []string{"esp8266", "esp8266-ota"} {
		checkHandOffLog(t, m, 1, byLabel["test "+variant], variant, "none", repo.version("v1"))
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
