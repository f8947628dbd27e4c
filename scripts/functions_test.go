package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shells returns the POSIX shells functions.sh must work under that exist here.
func shells(t *testing.T) []string {
	var found []string
	for _, sh := range []string{"dash", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		t.Skip("neither dash nor bash found")
	}
	return found
}

// writeExec writes an executable file.
func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeArgv is an OURCI_BIN that records its argv, one per line, in $ARGV_FILE,
// prints a task id, or fails like a refused spawn when $FAKE_FAIL is set.
const fakeArgv = `#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >"$ARGV_FILE"
if [ -n "${FAKE_FAIL:-}" ]; then echo "ourci-node: job is closed" >&2; exit 5; fi
echo task-42
`

func TestSpawnTask(t *testing.T) {
	functions, _ := filepath.Abs("functions.sh")
	cases := []struct {
		name, call, env  string
		wantRC           int
		wantArgv         []string // nil: not checked
		wantOut, wantErr string
	}{
		{name: "no image", call: `spawn_task -t ourci/build/docker - ci/v7.sh`,
			wantArgv: []string{"spawn", "-t", "ourci/build/docker", "--", "ci/v7.sh"}, wantOut: "task-42\n"},
		{name: "empty image", call: `spawn_task -t T "" "a b" c`,
			wantArgv: []string{"spawn", "-t", "T", "--", "a b", "c"}, wantOut: "task-42\n"},
		{name: "image", call: `spawn_task -t T sdk:1 "OTA=1 ci/fw/esp8266.sh"`,
			wantArgv: []string{"spawn", "-t", "T", "--image", "sdk:1", "--", "OTA=1 ci/fw/esp8266.sh"}, wantOut: "task-42\n"},
		{name: "spawn env", call: `A='x y'; OURCI_SPAWN_ENV='A UNSET B'; B=2; spawn_task -t T - -t`,
			wantArgv: []string{"spawn", "-t", "T", "--env", "B=2", "--env", "A=x y", "--", "-t"}, wantOut: "task-42\n"},
		{name: "failure", env: "FAKE_FAIL=1", call: `spawn_task -t ourci/test/esp-12e - x`, wantRC: 5,
			wantErr: "topic 'ourci/test/esp-12e' failed (exit 5)"},
		{name: "no args", call: `spawn_task -t T img`, wantRC: 2, wantErr: "usage"},
		{name: "no -t", call: `spawn_task T img x`, wantRC: 2, wantErr: "usage"},
		{name: "bad spawn env", call: `OURCI_SPAWN_ENV='A;rm' spawn_task -t T - x`, wantRC: 2, wantErr: "bad variable"},
	}
	for _, sh := range shells(t) {
		for _, c := range cases {
			t.Run(filepath.Base(sh)+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				writeExec(t, filepath.Join(dir, "fake"), fakeArgv)
				argvFile := filepath.Join(dir, "argv")
				script := "set -eu\n. '" + functions + "'\n" + c.call + "\n"
				cmd := exec.Command(sh, "-c", script)
				cmd.Env = append(os.Environ(), "OURCI_BIN="+filepath.Join(dir, "fake"), "ARGV_FILE="+argvFile)
				if c.env != "" {
					cmd.Env = append(cmd.Env, c.env)
				}
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				rc := 0
				if ee, ok := err.(*exec.ExitError); ok {
					rc = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if rc != c.wantRC || stdout.String() != c.wantOut || !strings.Contains(stderr.String(), c.wantErr) {
					t.Errorf("rc %d stdout %q stderr %q; want rc %d stdout %q stderr containing %q",
						rc, stdout.String(), stderr.String(), c.wantRC, c.wantOut, c.wantErr)
				}
				if c.wantArgv != nil {
					data, _ := os.ReadFile(argvFile)
					got := strings.Join(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), "|")
					if want := strings.Join(c.wantArgv, "|"); got != want {
						t.Errorf("argv %s, want %s", got, want)
					}
				}
			})
		}
	}
}
