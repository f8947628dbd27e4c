package e2e

// Containment of what tasks run, on real nodes: host tasks in cgroups (no
// child outlives its task, setsid or not), host tasks as an unprivileged
// --task-user that cannot read the node's secrets, a node that keeps no
// secret in its environment, and Docker tasks that are not root, not on
// the host's network and cannot leave a setuid file for the host.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// requireCgroups skips the test, loudly, unless this machine can put host
// tasks in cgroups (cgroup v2, root); OURCI_REQUIRE_CGROUPS=1 fails it
// instead.
func requireCgroups(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		_, err = os.Stat("/sys/fs/cgroup/unified/cgroup.controllers")
	}
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("not root")
	}
	if err != nil {
		if os.Getenv("OURCI_REQUIRE_CGROUPS") == "1" {
			t.Fatalf("OURCI_REQUIRE_CGROUPS=1, but cgroup v2 cannot be used here: %v", err)
		}
		t.Skipf("SKIPPED, CGROUP CONTAINMENT NOT TESTED: cgroup v2 cannot be used here (%v)", err)
	}
}

// escapees is a host task that starts two processes outside its process
// group, one with setsid and one daemonized (fork, setsid, fork, the middle
// one exits), each writing its pid into dir, and then sleeps.
func escapees(dir string) string {
	record := func(name, pid string) string {
		return fmt.Sprintf(`echo %[3]s > %[1]s/%[2]s.tmp && mv %[1]s/%[2]s.tmp %[1]s/%[2]s; exec sleep 1000`, dir, name, pid)
	}
	return fmt.Sprintf(`setsid sh -c '%s' &
setsid sh -c 'sh -c "%s" & exit' &
while [ ! -e %s/setsid ] || [ ! -e %s/daemon ]; do sleep 0.05; done
sleep 1000`, record("setsid", "$$"), record("daemon", `\$\$`), dir, dir)
}

// escapeePIDs waits for both pid files in dir.
func escapeePIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	wait.For(t, time.Minute, "the escapees' pid files", func() (bool, string) {
		for _, name := range []string{"setsid", "daemon"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return false, fmt.Sprintf("no pid file %s yet", name)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return false, err.Error()
			}
			pids[name] = pid
		}
		return true, ""
	})
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL) // if the test failed: they are ours
		}
	})
	for name, pid := range pids {
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid && name == "setsid" {
			t.Fatalf("%s escapee %d: process group %d (%v), want its own", name, pid, pgid, err)
		}
	}
	return pids
}

// alive reports whether pid runs (a zombie does not count: init reaps it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitDead waits until none of pids runs.
func waitDead(t *testing.T, pids map[string]int, after string) {
	t.Helper()
	wait.For(t, 30*time.Second, "the escapees to be killed", func() (bool, string) {
		for name, pid := range pids {
			if alive(pid) {
				return false, fmt.Sprintf("the %s escapee (pid %d) still runs after %s", name, pid, after)
			}
		}
		return true, ""
	})
}

// TestHostTaskEscapeesDie: a host task's children that left its process
// group (setsid, a daemon's double fork) die when the job is cancelled,
// when the task times out, and, after the node was killed -9, when it starts
// again (the crash sweep). Without cgroups every one of them lives on.
func TestHostTaskEscapeesDie(t *testing.T) {
	t.Parallel()
	requireCgroups(t)
	const topic = "e2e/escape"
	m := startMesh(t, []nodeSpec{{Name: "esc1", Topics: []string{topic}, Slots: 2}})

	t.Run("cancel", func(t *testing.T) {
		dir := t.TempDir()
		job, _ := m.spawn(t, 0, "-t", topic, "--", escapees(dir))
		pids := escapeePIDs(t, dir)
		if r := m.run(t, "cancel", job); r.code != 0 {
			t.Fatalf("cancel %s: %v", job, r)
		}
		waitJobAs[dockerJobView](t, m, 0, job, 30*time.Second, "the job to close", closed)
		waitDead(t, pids, "the cancel")
	})

	t.Run("timeout", func(t *testing.T) {
		dir := t.TempDir()
		job, task := m.spawn(t, 0, "--timeout", "3s", "-t", topic, "--", escapees(dir))
		pids := escapeePIDs(t, dir)
		v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
		if tv, _ := v.task(task); tv.State != "timed_out" {
			t.Errorf("want task %s timed_out, got %v", task, v)
		}
		waitDead(t, pids, "the timeout")
	})

	t.Run("crash sweep", func(t *testing.T) {
		dir := t.TempDir()
		job, _ := m.spawn(t, 0, "-t", topic, "--", escapees(dir))
		pids := escapeePIDs(t, dir)
		n := m.nodes[0]
		if err := n.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-n.exited
		for name, pid := range pids {
			if !alive(pid) {
				t.Fatalf("the %s escapee %d died with the node: want it running, as a crash leaves it", name, pid)
			}
		}
		n.logPath = filepath.Join(m.dir, n.spec.Name+".restarted.log")
		m.startNode(t, 0)
		wait.For(t, time.Minute, "the restarted mesh to be ready", m.ready(t))
		waitDead(t, pids, "the node started again")
		if log, _ := os.ReadFile(n.logPath); !strings.Contains(string(log), "left in their cgroups") {
			t.Errorf("the restarted node's log does not say it killed what was left in the cgroups:\n%s", log)
		}
		m.run(t, "cancel", job)
	})
}

// TestHostTaskUserCannotReadNodeSecrets: with --task-user nobody a host task
// runs as nobody in a workspace it owns (a checkout it can use with git),
// and cannot read the data directory, the secret file, the node's
// /proc/PID/environ, nor leave its cgroup. The node's environment holds no
// secret either (checked by a task of a node without --task-user, which,
// as root, can read the node's /proc entry).
func TestHostTaskUserCannotReadNodeSecrets(t *testing.T) {
	t.Parallel()
	requireCgroups(t)
	const topic, other = "e2e/untrusted", "e2e/other"
	const secretValue = "e2e-node-secret-value-3141"
	repo := makeSeedRepo(t)
	sha := repo.git(t, repo.bare, "rev-parse", "main")
	specs := []nodeSpec{
		{Name: "tu1", Topics: []string{topic, other}, Flags: []string{"--task-user", "nobody", "--secret-env", other + "=E2E_NODE_SECRET"},
			Env: []string{"E2E_NODE_SECRET=" + secretValue}},
	}
	m := startMesh(t, specs)
	dataDir := filepath.Join(m.dir, "tu1.data")
	// Violations print VIOLATION: (assembled at run time, as the log
	// starts with the task's command).
	probe := strings.Join([]string{
		`B=VIO`,
		`echo "id=$(id -u):$(id -g)"`,
		`echo "owner=$(stat -c %U .) head=$(git rev-parse HEAD)"`,
		`echo edit >> ci/VERSION && echo "checkout-writable"`,
		`cat ` + m.secretFile + ` >/dev/null 2>&1 && echo ${B}LATION:read-secret-file`,
		`cat ` + filepath.Join(dataDir, "cluster.secret") + ` >/dev/null 2>&1 && echo ${B}LATION:read-data-dir-secret`,
		`ls ` + dataDir + ` >/dev/null 2>&1 && echo ${B}LATION:listed-data-dir`,
		`cat /proc/$PPID/environ >/dev/null 2>&1 && echo ${B}LATION:read-node-environ`,
		`grep -q ` + secretValue + ` /proc/$PPID/cmdline && echo ${B}LATION:secret-on-node-cmdline`,
		`cg=$(cut -d: -f3 /proc/self/cgroup | tail -1); echo "cgroup=$cg"`,
		`for m in /sys/fs/cgroup /sys/fs/cgroup/unified; do { echo $$ > $m/cgroup.procs; } 2>/dev/null && echo ${B}LATION:left-cgroup; done`,
		`echo probe-done`,
	}, "; ")
	job, task := m.spawn(t, 0, "--repo", repo.bare, "--rev", "main", "-t", topic, "--", probe)
	v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	log := taskLog(t, m, 0, task)
	if tv, _ := v.task(task); tv.State != "passed" {
		t.Errorf("want task %s passed, got %v\n%s", task, v, log)
	}
	for _, want := range []string{"id=65534:65534\n", "owner=nobody head=" + sha + "\n", "checkout-writable\n", "probe-done\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the task's log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "VIOLATION:") {
		t.Errorf("the task as nobody could do what it must not:\n%s", log)
	}
	if !strings.Contains(log, "cgroup=/ourci/") {
		t.Errorf("the task does not run in an attempt cgroup under /ourci/:\n%s", log)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory %s: %v %v, want 0700", dataDir, fi.Mode(), err)
	}

	// The node read its --secret-env value and the rest of its secrets
	// from its environment: none of it is left there.
	m2 := startMesh(t, []nodeSpec{{Name: "tu2", Topics: []string{topic, other}, Flags: []string{"--secret-env", other + "=E2E_NODE_SECRET"},
		Env: []string{"E2E_NODE_SECRET=" + secretValue, "OURCI_GITHUB_TOKEN=ghp_e2e_not_a_real_token_2718"}}})
	job, task = m2.spawn(t, 0, "-t", topic, "--", `echo "uid=$(id -u)"; tr '\0' '\n' < /proc/$PPID/environ | grep -E '^(E2E_NODE_SECRET|OURCI_GITHUB_TOKEN)='; cat /proc/$PPID/environ >/dev/null && echo read-environ`)
	waitJobAs[dockerJobView](t, m2, 0, job, time.Minute, "the job to close", closed)
	log = taskLog(t, m2, 0, task)
	if !strings.Contains(log, "read-environ\n") || !strings.Contains(log, "E2E_NODE_SECRET=\n") {
		t.Errorf("a root task could not read the node's environ, or the variable is gone altogether:\n%s", log)
	}
	for _, s := range []string{secretValue, "ghp_e2e_not_a_real_token_2718"} {
		if strings.Contains(log, s) {
			t.Errorf("the node's /proc/PID/environ holds the secret %q:\n%s", s, log)
		}
	}
}

// TestDockerTaskContainment: under the defaults a Docker task runs as
// nobody, on the node-managed bridge network, with memory and pids limits
// and a nosuid,nodev workspace; it reaches its node through OURCI_NODE
// (ourci-node blob put) and a plain HTTP GET of ${BLOB_URL}/NAME, but not
// the host's loopback. --topic-network TOPIC=host brings back the host's
// network, where the loopback is reachable.
func TestDockerTaskContainment(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	dockerImages(t)
	bin := dockerNodeBinary(t)
	const hostNet = "e2e/docker-hostnet"
	name := dockerNodeName("box1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic, hostNet + "=docker"}, Slots: 2}},
		map[string][]string{name: {"--topic-network", hostNet + "=host"}})
	loopback := m.nodes[0].url // the node's --http is on 127.0.0.1
	probe := strings.Join([]string{
		`echo "id=$(id -u):$(id -g) home=$HOME"`,
		`echo "node=$OURCI_NODE"`,
		`grep " $PWD " /proc/self/mountinfo | grep -q nosuid,nodev && echo workspace-nosuid`,
		`echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"`,
		`echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"`,
		`echo blob-content > f && ourci-node blob put --name e2e/box -- f >/dev/null && echo uploaded`,
		`echo "got=$(wget -q -O - "${BLOB_URL}/e2e/box")"`,
		`timeout 5 wget -q -O - ` + loopback + `/v1/health >/dev/null 2>&1 && echo LOOPBACK-REACHED || echo loopback-unreachable`,
	}, "; ")
	job, task := m.spawn(t, 0, "--image", dockerBaseImage, "-t", buildTopic, "--", probe)
	v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	log := taskLog(t, m, 0, task)
	if v.Job.Status != "passed" {
		t.Errorf("want the job passed, got %v\n%s", v, log)
	}
	if strings.Contains(log, "node=http://127.0.0.1") || !strings.Contains(log, "node=http://") {
		t.Errorf("OURCI_NODE is not the node's address on the containers' network:\n%s", log)
	}
	for _, want := range []string{"id=65534:65534 home=", "workspace-nosuid\n",
		fmt.Sprintf("memory=%d\n", 4<<30), "pids=4096\n", "uploaded\n", "got=blob-content\n", "loopback-unreachable\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the Docker task's log lacks %q:\n%s", want, log)
		}
	}

	job, task = m.spawn(t, 0, "--image", dockerBaseImage, "-t", hostNet, "--",
		`wget -q -O - `+loopback+`/v1/health >/dev/null && echo loopback-reached`)
	waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	if log = taskLog(t, m, 0, task); !strings.Contains(log, "loopback-reached\n") {
		t.Errorf("on the host network, the task did not reach the node on 127.0.0.1:\n%s", log)
	}
}
