package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mendLine marks a mend of the seed's printed text: the line after it
// replaces the printed line quoted here.
var mendLine = regexp.MustCompile(`^# mend \(printed: "(.*)"\): \S.*$`)

// TestSeedAsPrinted: example/seed holds the seed's scripts as the design
// doc prints them (testdata/printed, copied verbatim from it) but for the
// mends, each marked with a comment that quotes the printed line it
// replaces; undoing them gives the printed text back byte for byte. The
// number of mends per file is pinned, so a new one is a decision.
func TestSeedAsPrinted(t *testing.T) {
	for _, tt := range []struct {
		file  string
		mends int
	}{
		{"ci/all.sh", 0},
		{"ci/v7.sh", 0},
		{"ci/fw.sh", 0},
		{"ci/fw/esp8266.sh", 1},              // the elided lines that set FW_BLOB and SCRIPT_BLOB
		{"ci/fw/esp8266_test_driver.sh", 6},  // the elided arguments of tar, esptool.sh, sleep, cadaver, sleep, curl
		{"agents/ourci_esp8266_agent.sh", 1}, // ./test_script for ./test_script.sh
	} {
		t.Run(tt.file, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join(SeedDir, filepath.FromSlash(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			printed, err := os.ReadFile(filepath.Join("testdata", "printed", filepath.FromSlash(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			undone, mends := undoMends(string(got))
			if undone != string(printed) {
				t.Errorf("with its %d mends undone it differs from the printed text:\n--- got\n%s--- printed\n%s", mends, undone, printed)
			}
			if mends != tt.mends {
				t.Errorf("%d mends, want %d", mends, tt.mends)
			}
			if bytes.HasPrefix(got, []byte("#!")) {
				t.Errorf("starts with #!, which the seed does not print (the executor runs a script without one with /bin/sh)")
			}
		})
	}
}

// undoMends replaces each mend (its comment and the line after it) by the
// printed line it quotes.
func undoMends(s string) (string, int) {
	lines := strings.Split(s, "\n")
	var out []string
	n := 0
	for i := 0; i < len(lines); i++ {
		if m := mendLine.FindStringSubmatch(lines[i]); m != nil && i+1 < len(lines) {
			out = append(out, m[1])
			i++
			n++
			continue
		}
		out = append(out, lines[i])
	}
	return strings.Join(out, "\n"), n
}

// fakeNode is an OURCI_BIN that runs each spawned task at once, the way a
// node would: a build task in a fresh clone of REPO, a hardware test in an
// empty directory through AGENT, each with only the task environment, and
// appends "id|parent|topic|image|argc:args|exit" to LEDGER. With DOCKER=1
// the build topic counts as a Docker topic for --image-first. Scripts run
// under the shell SH. @NAME@ are filled in.
//
// Blobs: `blob put [--name NAME] [--] FILE` copies FILE to BLOBS/<hex> (and to
// BLOBS/NAME) and prints sha256:<hex>; `blob get [-o FILE] [--] REF` copies it
// back. Tasks get BLOB_URL=file://BLOBS, which curl reads like the node's URL.
const fakeNode = `#!/bin/sh
set -eu
STATE=@STATE@ LEDGER=@LEDGER@ AGENT=@AGENT@ FAKE_PATH=@PATH@ SH=@SH@ BLOBS=@BLOBS@ REPO=@REPO@ DOCKER=@DOCKER@
if [ "$1" = blob ]; then
	verb=$2 name= out=-
	shift 2
	while [ $# -gt 0 ]; do
		case $1 in
		--name) name=$2; shift 2 ;;
		-o) out=$2; shift 2 ;;
		--) shift; break ;;
		-*) echo "fake blob: unknown flag $1" >&2; exit 2 ;;
		*) break ;;
		esac
	done
	[ $# -eq 1 ] || { echo "fake blob: want one FILE or REF: $*" >&2; exit 2; }
	case $verb in
	put)
		[ -f "$1" ] || { echo "fake blob put: no file $1" >&2; exit 7; }
		hex=$(sha256sum <"$1" | cut -d' ' -f1)
		cp "$1" "$BLOBS/$hex"
		if [ -n "$name" ]; then
			mkdir -p "$(dirname "$BLOBS/$name")"
			cp "$1" "$BLOBS/$name"
		fi
		echo "sha256:$hex"
		;;
	get)
		src=$BLOBS/${1#sha256:}
		[ -f "$src" ] || { echo "fake blob get: no blob $1" >&2; exit 5; }
		if [ "$out" = - ]; then cat "$src"; else cp "$src" "$out"; fi
		;;
	*) exit 64 ;;
	esac
	exit 0
fi
[ "$1" = spawn ] || exit 64
shift
topic= image= envs= first=
while [ $# -gt 0 ]; do
	case $1 in
	-t) topic=$2; shift 2 ;;
	--image) image=$2; shift 2 ;;
	--env) envs="$envs $2"; shift 2 ;;
	--image-first) first=1; shift ;;
	--) shift; break ;;
	*) exit 64 ;;
	esac
done
# --image-first as the leader reads it: the first argument is the image on a
# Docker topic, an argument elsewhere ("" and "-" are the no-image marker).
if [ -n "$first" ]; then
	if [ "$DOCKER" = 1 ] && [ "$topic" = ourci/build/docker ]; then
		case ${1:-} in '' | -) echo "fake spawn: $topic runs in Docker: the first argument is the image" >&2; exit 2 ;; esac
		image=$1
		shift
	elif [ $# -gt 0 ] && { [ "$1" = - ] || [ -z "$1" ]; }; then
		shift
	fi
fi
n=$(ls "$STATE" | wc -l)
id=t$((n + 1))
: >"$STATE/$id"
ws=$(mktemp -d)
if [ "$topic" = ourci/build/docker ]; then
	git clone -q "$REPO" "$ws"
fi
set +e
task() { cd "$ws" && env -i PATH="$FAKE_PATH" HOME="$ws" OURCI_TASK=$id OURCI_IMAGE="$image" CI_BRANCH=master BLOB_URL="file://$BLOBS" $envs "$@"; }
if [ "$topic" = ourci/test/esp-12e ]; then
	(task "$SH" "$AGENT" "$@") >"$STATE/$id" 2>&1
elif [ $# -eq 1 ]; then
	(task "$SH" -c "$1") >"$STATE/$id" 2>&1
else
	(task "$SH" "$@") >"$STATE/$id" 2>&1
fi
rc=$?
printf '%s|%s|%s|%s|%s|%s\n' "$id" "${OURCI_TASK:-}" "$topic" "$image" "$#:$*" "$rc" >>"$LEDGER"
echo "$id"
`

// fakeTask is one line of fakeNode's ledger.
type fakeTask struct {
	id, parent, topic, image, args, exit string
	log                                  string
}

// runFake runs the seed's pipeline (ci/all.sh on ourci/build/docker)
// against fakeNode under shell sh on the repository repo (a git
// repository of WriteSeedRepo), and returns its tasks by label
// (exampleLabel) and the blob directory.
func runFake(t *testing.T, sh, repo string, docker bool, rootEnv ...string) (map[string]fakeTask, string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "state", "blobs", "rig"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := WriteRig(filepath.Join(dir, "rig"))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSub(BuildBinDir, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	bin, blobs, ledger := filepath.Join(dir, "bin"), filepath.Join(dir, "blobs"), filepath.Join(dir, "ledger")
	path := bin + ":" + filepath.Join(dir, "rig", "bin") + ":" + os.Getenv("PATH")
	flag := "0"
	if docker {
		flag = "1"
	}
	fake := strings.NewReplacer("#!/bin/sh", "#!"+sh, "@SH@", sh, "@STATE@", filepath.Join(dir, "state"),
		"@LEDGER@", ledger, "@PATH@", path, "@BLOBS@", blobs, "@REPO@", repo, "@DOCKER@", flag,
		"@AGENT@", agent).Replace(fakeNode)
	writeExec(t, filepath.Join(bin, "ourci-node"), fake)
	// The board needs no time to boot here: the driver's sleeps return at once.
	writeExec(t, filepath.Join(bin, "sleep"), "#!/bin/sh\nexit 0\n")
	args := []string{"spawn", "-t", "ourci/build/docker"}
	for _, kv := range rootEnv {
		args = append(args, "--env", kv)
	}
	cmd := exec.Command(filepath.Join(bin, "ourci-node"), append(args, "--", "ci/all.sh")...)
	cmd.Env = []string{"PATH=" + path}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("spawn: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(ledger)
	tasks := map[string]fakeTask{}
	labels := map[string]string{} // id -> label
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 6 {
			t.Fatalf("ledger line %q", line)
		}
		ft := fakeTask{id: f[0], parent: f[1], topic: f[2], image: f[3], args: f[4], exit: f[5]}
		log, _ := os.ReadFile(filepath.Join(dir, "state", ft.id))
		ft.log = string(log)
		l := exampleLabel(ft.topic, ft.args)
		if _, dup := tasks[l]; dup {
			t.Errorf("task %s duplicates %q", ft.id, l)
		}
		tasks[l], labels[ft.id] = ft, l
	}
	for l, ft := range tasks {
		ft.parent = labels[ft.parent]
		tasks[l] = ft
	}
	return tasks, blobs
}

// exampleLabel names a task of the seed's pipeline by its topic and
// args (argc:args): all, v7, ..., esp8266-ota, and "test VARIANT" for a
// hardware test (after its first arg, fw-VARIANT.tar.gz).
func exampleLabel(topic, args string) string {
	_, list, _ := strings.Cut(args, ":")
	if topic == "ourci/test/esp-12e" {
		fw, _, _ := strings.Cut(list, " ")
		return "test " + strings.TrimSuffix(strings.TrimPrefix(fw, "fw-"), ".tar.gz")
	}
	switch list {
	case "OTA=1 ci/fw/esp8266.sh":
		return "esp8266-ota"
	case "ci/fw/esp8266.sh":
		return "esp8266"
	case "ci/fw/posix.sh":
		return "posix"
	}
	return strings.TrimSuffix(strings.TrimPrefix(list, "ci/"), ".sh")
}

// seedRepo makes a git repository (branch master) of WriteSeedRepo and
// returns its directory; edit, when not nil, changes the tree first.
func seedRepo(t *testing.T, edit func(dir string)) string {
	t.Helper()
	for _, tool := range []string{"git", "make", "curl", "tar", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: the seed's scripts need %s: %v", tool, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "dev")
	if err := WriteSeedRepo(dir); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(dir)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "master"},
		{"add", "-A"},
		{"-c", "user.name=OurCI test", "-c", "user.email=test@ourci.invalid", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "the seed's repository"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

// TestExamplePipeline runs the seed's scripts against fakeNode, with the
// build topic served in Docker (the first argument of spawn_task is the
// image, BASE_SDK and ESP_SDK come from the root spawn and are handed down)
// and on the host (BASE_SDK and ESP_SDK unset): both spawn exactly the
// seed's tree of ten tasks, every task passes, the printed commands run
// against the stand-in tree, and each hardware test gets the firmware and
// the driver by name and passes on the simulated board.
func TestExamplePipeline(t *testing.T) {
	for _, sh := range shells(t) {
		repo := seedRepo(t, nil)
		for _, kind := range []struct {
			name   string
			docker bool
			env    []string
			base   string // the image of the builds; "" for none
			esp    string
		}{
			{"docker", true, []string{"BASE_SDK=base:1", "ESP_SDK=esp:2"}, "base:1", "esp:2"},
			{"host", false, nil, "", ""},
		} {
			t.Run(filepath.Base(sh)+"/"+kind.name, func(t *testing.T) {
				t.Parallel()
				tasks, blobs := runFake(t, sh, repo, kind.docker, kind.env...)
				want := map[string]string{ // label -> "parent label|image"
					"all": "|", "v7": "all|" + kind.base, "mongoose": "all|" + kind.base, "cloud": "all|" + kind.base,
					"fw": "all|" + kind.base, "posix": "fw|" + kind.base, "esp8266": "fw|" + kind.esp,
					"esp8266-ota": "fw|" + kind.esp, "test esp8266": "esp8266|", "test esp8266-ota": "esp8266-ota|",
				}
				if len(tasks) != len(want) {
					t.Errorf("got %d tasks, want the %d of the seed's tree: %v", len(tasks), len(want), tasks)
				}
				for l, w := range want {
					ft, ok := tasks[l]
					if !ok {
						t.Errorf("no task %s", l)
						continue
					}
					if got := ft.parent + "|" + ft.image; got != w {
						t.Errorf("%s (args %q): parent|image %q, want %q", l, ft.args, got, w)
					}
					if ft.exit != "0" {
						t.Errorf("%s exited %s:\n%s", l, ft.exit, ft.log)
					}
				}
				// One argument each: the image was taken (Docker) or
				// ${BASE_SDK} was empty (host), never passed on.
				if got := tasks["v7"].args; got != "1:ci/v7.sh" {
					t.Errorf("v7: args %q, want 1:ci/v7.sh", got)
				}
				checkV7Log(t, tasks["v7"].log)
				driver, err := FS.ReadFile(SeedDir + "/ci/fw/esp8266_test_driver.sh")
				if err != nil {
					t.Fatal(err)
				}
				for _, variant := range []string{"esp8266", "esp8266-ota"} {
					ota := map[string]string{"esp8266": "0", "esp8266-ota": "1"}[variant]
					ft := tasks["test "+variant]
					if want := "2:fw-" + variant + ".tar.gz test-driver-" + variant + ".sh"; ft.args != want {
						t.Errorf("test %s: args %q, want %q", variant, ft.args, want)
					}
					mustContain(t, "test "+variant, ft.log,
						"firmware/0x00000.bin\n", // tar's listing of the firmware fetched by name
						"esptool.sh: wrote ",
						`board: ok   expect("ota=`+ota+`")`,
						"PASS: 3 of 3 expectations of test.js hold\n",
						"firmware: board=esp-12e ota="+ota+" sdk=none version=stand-in 1\n")
					if got, err := os.ReadFile(filepath.Join(blobs, "test-driver-"+variant+".sh")); err != nil || !bytes.Equal(got, driver) {
						t.Errorf("blob test-driver-%s.sh: %v; want the driver's bytes", variant, err)
					}
					if _, err := os.Stat(filepath.Join(blobs, "fw-"+variant+".tar.gz")); err != nil {
						t.Errorf("blob fw-%s.tar.gz: %v", variant, err)
					}
				}
			})
		}

		// A commit that breaks the firmware: both hardware tests fail (the
		// driver's last line, the fetch of the board's results, fails),
		// the eight builds still pass.
		t.Run(filepath.Base(sh)+"/broken firmware", func(t *testing.T) {
			t.Parallel()
			broken := seedRepo(t, breakFirmware(t))
			tasks, _ := runFake(t, sh, broken, false)
			for l, ft := range tasks {
				failed := ft.exit != "0"
				if isTest := strings.HasPrefix(l, "test "); failed != isTest {
					t.Errorf("%s exited %s; want only the hardware tests to fail:\n%s", l, ft.exit, ft.log)
				} else if isTest {
					mustContain(t, l, ft.log, `board: FAIL expect("mg_serve_http(80);")`, "the board crashed and serves no results")
				}
			}
			if len(tasks) != 10 {
				t.Errorf("got %d tasks, want 10: %v", len(tasks), tasks)
			}
		})
	}
}

// breakFirmware returns an edit of the seed's repository that makes the
// firmware fail its board test (the HTTP server moves to another port).
func breakFirmware(t *testing.T) func(dir string) {
	return func(dir string) {
		t.Helper()
		p := filepath.Join(dir, "fw", "src", "main.c")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(data, []byte("mg_serve_http(80)"), []byte("mg_serve_http(8080)")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkV7Log checks that the seed's ci/v7.sh ran each of its lines
// against the stand-in tree.
func checkV7Log(t *testing.T, log string) {
	t.Helper()
	mustContain(t, "v7", log,
		"v7: tests: compile: 3 of 3 ECMA-262 tests pass\n",
		"v7: w: ", "v7: build_variants: ecma ok\n", "v7: docs: ", "v7: v7.c amalgamated",
		"v7: difftest ok   100/7 = 14\n", "v7: run: v7 -e '6*7' with CFLAGS_EXTRA=: 42\n",
		"v7: run: v7 -e '6*7' with CFLAGS_EXTRA=-m32: 42\n", "v7: examples: hello ok\n",
		"Updated 1 path from the index\n", // git checkout v7/tests/ecma_report.txt, which compile rewrote
		"v7: report_footprint: v7.c is ")  // CI_BRANCH is master
	if strings.Contains(log, "not found") {
		t.Errorf("v7: a command was not found:\n%s", log)
	}
}

func mustContain(t *testing.T, what, log string, lines ...string) {
	t.Helper()
	for _, line := range lines {
		if !strings.Contains(log, line) {
			t.Errorf("%s: output lacks %q:\n%s", what, line, log)
		}
	}
}
