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
// and prints what ourci-node would: a task id for spawn, a reference for blob
// put, nothing for blob get. When $FAKE_FAIL is set it fails instead, with
// exit status ${FAKE_RC:-5} and the message ${FAKE_MSG:-job is closed}.
const fakeArgv = `#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >"$ARGV_FILE"
if [ -n "${FAKE_FAIL:-}" ]; then echo "ourci-node: ${FAKE_MSG:-job is closed}" >&2; exit "${FAKE_RC:-5}"; fi
case "$1 ${2:-}" in
spawn*) echo task-42 ;;
"blob put") echo ` + fakeRef + ` ;;
esac
`

// fakeRef is the reference fakeArgv prints for blob put.
const fakeRef = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

// shellCase is one call of a functions.sh function against fakeArgv.
type shellCase struct {
	name, call, env  string // env: space-separated K=V for the fake
	wantRC           int
	wantArgv         []string // nil: not checked
	wantOut, wantErr string
}

// runShellCases runs each case under every shell: sources functions.sh in a
// `set -eu` script in a fresh directory, calls c.call with OURCI_BIN=fakeArgv,
// and checks exit status, stdout, stderr and the fake's argv.
func runShellCases(t *testing.T, cases []shellCase) {
	functions, _ := filepath.Abs("functions.sh")
	for _, sh := range shells(t) {
		for _, c := range cases {
			t.Run(filepath.Base(sh)+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				writeExec(t, filepath.Join(dir, "fake"), fakeArgv)
				argvFile := filepath.Join(dir, "argv")
				script := "set -eu\n. '" + functions + "'\n" + c.call + "\n"
				cmd := exec.Command(sh, "-c", script)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "OURCI_BIN="+filepath.Join(dir, "fake"), "ARGV_FILE="+argvFile)
				cmd.Env = append(cmd.Env, strings.Fields(c.env)...)
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
				data, readErr := os.ReadFile(argvFile)
				switch {
				case c.wantArgv == nil:
				case len(c.wantArgv) == 0:
					if readErr == nil {
						t.Errorf("ourci-node ran with %q; want it not run", data)
					}
				default:
					got := strings.Join(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), "|")
					if want := strings.Join(c.wantArgv, "|"); got != want {
						t.Errorf("argv %s, want %s", got, want)
					}
				}
			})
		}
	}
}

// spawn_task passes its arguments on as they are, the first one included:
// the leader reads it as the image or as an argument by how the topic is
// served (--image-first; node/commands.go imageFirst).
func TestSpawnTask(t *testing.T) {
	runShellCases(t, []shellCase{
		{name: "no image marker", call: `spawn_task -t ourci/build/docker - ci/v7.sh`,
			wantArgv: []string{"spawn", "-t", "ourci/build/docker", "--image-first", "--", "-", "ci/v7.sh"}, wantOut: "task-42\n"},
		{name: "empty image", call: `spawn_task -t T "" "a b" c`,
			wantArgv: []string{"spawn", "-t", "T", "--image-first", "--", "", "a b", "c"}, wantOut: "task-42\n"},
		{name: "image", call: `spawn_task -t T sdk:1 "OTA=1 ci/fw/esp8266.sh"`,
			wantArgv: []string{"spawn", "-t", "T", "--image-first", "--", "sdk:1", "OTA=1 ci/fw/esp8266.sh"}, wantOut: "task-42\n"},
		{name: "the seed's hardware test", call: `spawn_task -t ourci/test/esp-12e fw.tar.gz test.sh`,
			wantArgv: []string{"spawn", "-t", "ourci/test/esp-12e", "--image-first", "--", "fw.tar.gz", "test.sh"}, wantOut: "task-42\n"},
		{name: "one argument", call: `spawn_task -t T ci/all.sh`,
			wantArgv: []string{"spawn", "-t", "T", "--image-first", "--", "ci/all.sh"}, wantOut: "task-42\n"},
		{name: "spawn env", call: `A='x y'; OURCI_SPAWN_ENV='A UNSET B'; B=2; spawn_task -t T - -t`,
			wantArgv: []string{"spawn", "-t", "T", "--env", "B=2", "--env", "A=x y", "--image-first", "--", "-", "-t"}, wantOut: "task-42\n"},
		{name: "spawn env default: the seed's images", call: `BASE_SDK=base:1; ESP_SDK='esp sdk:2'; spawn_task -t T $BASE_SDK ci/fw.sh`,
			wantArgv: []string{"spawn", "-t", "T", "--env", "ESP_SDK=esp sdk:2", "--env", "BASE_SDK=base:1", "--image-first", "--", "base:1", "ci/fw.sh"}, wantOut: "task-42\n"},
		{name: "spawn env default, unset", call: `unset BASE_SDK ESP_SDK; spawn_task -t T ${BASE_SDK-} ci/v7.sh`,
			wantArgv: []string{"spawn", "-t", "T", "--image-first", "--", "ci/v7.sh"}, wantOut: "task-42\n"},
		{name: "spawn env empty: none", call: `BASE_SDK=base:1; OURCI_SPAWN_ENV=; spawn_task -t T $BASE_SDK ci/v7.sh`,
			wantArgv: []string{"spawn", "-t", "T", "--image-first", "--", "base:1", "ci/v7.sh"}, wantOut: "task-42\n"},
		{name: "failure", env: "FAKE_FAIL=1", call: `spawn_task -t ourci/test/esp-12e - x`, wantRC: 5,
			wantErr: "topic 'ourci/test/esp-12e' failed (exit 5)"},
		{name: "no args", call: `spawn_task -t T`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
		{name: "no -t", call: `spawn_task T img x`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
		{name: "bad spawn env", call: `OURCI_SPAWN_ENV='A;rm' spawn_task -t T - x`, wantRC: 2, wantErr: "bad variable", wantArgv: []string{}},
	})
}

func TestBlobUpload(t *testing.T) {
	runShellCases(t, []shellCase{
		{name: "file", call: `blob_upload fw.tar.gz`,
			wantArgv: []string{"blob", "put", "--", "fw.tar.gz"}, wantOut: fakeRef + "\n"},
		{name: "name", call: `blob_upload "dir/fw 1.tar.gz" fw-esp8266.tar.gz`,
			wantArgv: []string{"blob", "put", "--name", "fw-esp8266.tar.gz", "--", "dir/fw 1.tar.gz"}, wantOut: fakeRef + "\n"},
		{name: "empty name is none", call: `blob_upload fw.tar.gz ""`,
			wantArgv: []string{"blob", "put", "--", "fw.tar.gz"}, wantOut: fakeRef + "\n"},
		{name: "dash file and name", call: `blob_upload -x -n`,
			wantArgv: []string{"blob", "put", "--name", "-n", "--", "-x"}, wantOut: fakeRef + "\n"},
		{name: "captured", call: `ref=$(blob_upload fw.tar.gz n); echo "got $ref"`,
			wantArgv: []string{"blob", "put", "--name", "n", "--", "fw.tar.gz"}, wantOut: "got " + fakeRef + "\n"},
		{name: "failure", env: "FAKE_FAIL=1 FAKE_RC=7 FAKE_MSG=open", call: `blob_upload fw.tar.gz fw`, wantRC: 7,
			wantErr: "blob_upload: uploading 'fw.tar.gz' failed (exit 7)"},
		{name: "refused name", env: "FAKE_FAIL=1 FAKE_RC=2", call: `blob_upload fw.tar.gz ../x`, wantRC: 2,
			wantArgv: []string{"blob", "put", "--name", "../x", "--", "fw.tar.gz"}, wantErr: "uploading 'fw.tar.gz' failed (exit 2)"},
		{name: "failure stops set -e", env: "FAKE_FAIL=1 FAKE_RC=3", call: `ref=$(blob_upload fw.tar.gz); echo not reached`, wantRC: 3,
			wantErr: "failed (exit 3)"},
		{name: "no args", call: `blob_upload`, wantRC: 2, wantErr: "usage: blob_upload FILE [NAME]", wantArgv: []string{}},
		{name: "empty file", call: `blob_upload "" n`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
		{name: "too many", call: `blob_upload a b c`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
	})
}

func TestBlobDownload(t *testing.T) {
	runShellCases(t, []shellCase{
		{name: "name", call: `blob_download fw-esp8266.tar.gz`,
			wantArgv: []string{"blob", "get", "-o", "fw-esp8266.tar.gz", "--", "fw-esp8266.tar.gz"}},
		{name: "last path element", call: `blob_download fw/esp/fw.tar.gz`,
			wantArgv: []string{"blob", "get", "-o", "fw.tar.gz", "--", "fw/esp/fw.tar.gz"}},
		{name: "hash to file", call: `blob_download ` + fakeRef + ` "out dir/fw.bin"`,
			wantArgv: []string{"blob", "get", "-o", "out dir/fw.bin", "--", fakeRef}},
		{name: "hash default file", call: `blob_download ` + fakeRef,
			wantArgv: []string{"blob", "get", "-o", fakeRef, "--", fakeRef}},
		{name: "stdout", call: `blob_download n -`,
			wantArgv: []string{"blob", "get", "-o", "-", "--", "n"}},
		{name: "dash ref", call: `blob_download -n`,
			wantArgv: []string{"blob", "get", "-o", "-n", "--", "-n"}},
		{name: "not found", env: "FAKE_FAIL=1 FAKE_RC=5", call: `blob_download fw/x.tar.gz`, wantRC: 5,
			wantArgv: []string{"blob", "get", "-o", "x.tar.gz", "--", "fw/x.tar.gz"},
			wantErr:  "blob_download: downloading 'fw/x.tar.gz' to 'x.tar.gz' failed (exit 5)"},
		{name: "failure stops set -e", env: "FAKE_FAIL=1 FAKE_RC=3", call: `blob_download x; echo not reached`, wantRC: 3,
			wantErr: "failed (exit 3)"},
		{name: "no file name", call: `blob_download dir/`, wantRC: 2, wantErr: "no last path element", wantArgv: []string{}},
		{name: "no args", call: `blob_download`, wantRC: 2, wantErr: "usage: blob_download REF [FILE]", wantArgv: []string{}},
		{name: "empty ref", call: `blob_download "" f`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
		{name: "too many", call: `blob_download a b c`, wantRC: 2, wantErr: "usage", wantArgv: []string{}},
	})
}
