package e2e

// The attacks of issue 15 that come from code a task runs, on real
// ourci-node processes: (1) a container spawning onto a host topic,
// (6) a spawn body too big for the ledger, (7) an environment that hijacks
// a rig's agent script before its first line, (10) escape sequences in a
// spawn that drive the operator's terminal. The others: network ones in
// attack_net_test.go, executors in contain_test.go, tokens and masking in
// attack_token_test.go.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// (1) A Docker task may not spawn onto a host topic: the child would run
// as the node's user on the host and read the cluster secret. Refused with
// 403 naming the rule; nothing lands in the ledger, nothing runs. The
// seed's Docker build → agent hand-off stays allowed (TestSeedDocker).
func TestAttackContainerSpawnsOntoHost(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	dockerImages(t)
	bin := dockerNodeBinary(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	name := dockerNodeName("esc1")
	m := startDockerMesh(t, bin, []nodeSpec{{Name: name, Topics: []string{dockerTopic, "e2e/host"}, Slots: 2}}, nil)
	attack := `ourci-node spawn -t e2e/host -- 'id > ` + marker + `; cat $HOME/.ourci/cluster.secret >> ` + marker + `'; echo "spawn exit $?"`
	job, task := m.spawn(t, 0, "--image", dockerBaseImage, "-t", buildTopic, "--", attack)
	v := waitJobAs[dockerJobView](t, m, 0, job, time.Minute, "the job to close", closed)
	log := taskLog(t, m, 0, task)
	if !strings.Contains(log, "spawn exit 4") || !strings.Contains(log, "--topic-accept e2e/host=") {
		t.Errorf("the container's spawn onto a host topic: want it refused (exit 4) naming --topic-accept, got log:\n%s", log)
	}
	if len(v.Tasks) != 1 {
		t.Errorf("the job holds %d tasks, want only the attacker's: %v", len(v.Tasks), v)
	}
	if _, err := os.Stat(marker); err == nil {
		b, _ := os.ReadFile(marker)
		t.Errorf("the host command ran on the host: %s", b)
	}
}

// (7) An agent script is a rig's gate: --env may not set what runs code
// before its first line (LD_PRELOAD, BASH_ENV, exported functions, PATH).
func TestAttackEnvHijacksAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ran := filepath.Join(dir, "agent-ran")
	evil := filepath.Join(dir, "evil.sh")
	os.WriteFile(evil, []byte("echo hijacked > "+ran+"\n"), 0o755)
	agent := filepath.Join(dir, "agent.sh")
	os.WriteFile(agent, []byte("#!/bin/bash\necho \"agent $*\" >> "+ran+"\n"), 0o755)
	m := startMesh(t, []nodeSpec{{Name: "rig1", Topics: []string{"e2e/rig=" + agent}}})
	for _, env := range []string{"BASH_ENV=" + evil, "LD_PRELOAD=/tmp/evil.so", "BASH_FUNC_echo%%=() { id; }", "PATH=" + dir, "ENV=" + evil, "IFS=/"} {
		r := m.run(t, "spawn", "-t", "e2e/rig", "--env", env, "--", "fw.bin")
		k, _, _ := strings.Cut(env, "=")
		if r.code != exitUsageCode || !strings.Contains(r.stderr, k) || !strings.Contains(r.stderr, "--topic-env-allow") {
			t.Errorf("spawn --env %s: got %v, want exit 2 naming %s and --topic-env-allow", env, r, k)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		b, _ := os.ReadFile(ran)
		t.Errorf("the agent ran for a refused spawn: %s", b)
	}
	r := m.run(t, "spawn", "--wait", "-t", "e2e/rig", "--env", "FW_VARIANT=ota", "--", "fw.bin")
	if r.code != 0 {
		t.Fatalf("an ordinary --env: %v", r)
	}
	if b, _ := os.ReadFile(ran); string(b) != "agent fw.bin\n" {
		t.Errorf("the agent's record: got %q, want one clean run", b)
	}
}

const exitUsageCode = 2

// (6) A spawn body that would sit in every replica for the job history is
// refused at once with a clear message (413, exit 2), not accepted.
func TestAttackHugeSpawn(t *testing.T) {
	t.Parallel()
	m := startMesh(t, []nodeSpec{{Name: "q1", Topics: []string{"e2e/q"}}})
	big := strings.Repeat("A", 60_000)
	args := []string{"spawn", "-t", "e2e/q", "--"}
	for i := 0; i < 4; i++ {
		args = append(args, big)
	}
	r := m.run(t, args...)
	if r.code != exitUsageCode || !strings.Contains(r.stderr, "--max-spawn-bytes") || !strings.Contains(r.stderr, "blob") {
		t.Errorf("a 240 kB spawn: got exit %d, stderr %q; want 2 naming --max-spawn-bytes and the blob way", r.code, r.stderr)
	}
	st := m.run(t, "status", "--json")
	if strings.Contains(st.stdout, big[:100]) {
		t.Errorf("the refused spawn is in the ledger")
	}
}

// (10) Escape sequences in a spawn (its arguments, its topic name) are shown
// escaped by status, never sent to the operator's terminal.
func TestAttackTerminalInjection(t *testing.T) {
	t.Parallel()
	m := startMesh(t, []nodeSpec{{Name: "tty1", Topics: []string{"e2e/tty"}}})
	evil := "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b[32mall 9 tasks passed\x1b[0m"
	r := m.run(t, "spawn", "--json", "-t", "e2e/tty", "--", "echo hi", evil)
	if r.code != 0 {
		t.Fatalf("spawn: %v", r)
	}
	var out struct{ Job string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Job == "" {
		t.Fatalf("spawn --json: %q (%v)", r.stdout, err)
	}
	job := out.Job
	for _, args := range [][]string{{"status"}, {"status", job}} {
		out := m.run(t, args...)
		if strings.ContainsAny(out.stdout+out.stderr, "\x1b\x07") {
			t.Errorf("ourci-node %v printed raw control characters: %q", args, out.stdout)
		}
		if len(args) == 2 && !strings.Contains(out.stdout, `\x1b]0;pwned\x07`) {
			t.Errorf("ourci-node %v: want the arguments shown escaped, got %q", args, out.stdout)
		}
	}
}
