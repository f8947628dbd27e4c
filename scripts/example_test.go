package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeNode is an OURCI_BIN that runs each spawned task at once, in a fresh
// directory and with only the task environment (like a node would), and appends
// "id|parent|topic|image|args|exit" to LEDGER. Tasks on ourci/test/esp-12e run
// through AGENT; others as host commands (one arg: sh -c). Scripts run under
// the shell SH (except the shell form's own #!/bin/sh). @NAME@ are filled in.
//
// Blobs: `blob put [--name NAME] [--] FILE` copies FILE to BLOBS/<hex> (and to
// BLOBS/NAME) and prints sha256:<hex>; `blob get [-o FILE] [--] REF` copies it
// back. Tasks get BLOB_URL=file://BLOBS, which curl reads like the node's URL.
const fakeNode = `#!/bin/sh
set -eu
STATE=@STATE@ LEDGER=@LEDGER@ AGENT=@AGENT@ FAKE_PATH=@PATH@ SH=@SH@ BLOBS=@BLOBS@
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
# --image-first as the leader reads it here: the build topic runs in
# Docker, the others do not ("" and "-" are the no-image marker).
if [ -n "${first:-}" ]; then
	if [ "$topic" = ourci/build/docker ] && [ "$1" != - ] && [ -n "$1" ]; then image=$1; shift
	elif [ "$1" = - ] || [ -z "$1" ]; then shift; fi
fi
n=$(ls "$STATE" | wc -l)
id=t$((n + 1))
: >"$STATE/$id"
ws=$(mktemp -d)
set +e
if [ "$topic" = ourci/test/esp-12e ]; then
	(cd "$ws" && env -i PATH="$FAKE_PATH" OURCI_TASK=$id BLOB_URL="file://$BLOBS" $envs "$SH" "$AGENT" "$@") >"$STATE/$id" 2>&1
elif [ $# -eq 1 ]; then
	(cd "$ws" && env -i PATH="$FAKE_PATH" OURCI_TASK=$id BLOB_URL="file://$BLOBS" $envs "$SH" -c "$1") >"$STATE/$id" 2>&1
else
	(cd "$ws" && env -i PATH="$FAKE_PATH" OURCI_TASK=$id BLOB_URL="file://$BLOBS" $envs "$SH" "$@") >"$STATE/$id" 2>&1
fi
rc=$?
printf '%s|%s|%s|%s|%s|%s\n' "$id" "${OURCI_TASK:-}" "$topic" "$image" "$*" "$rc" >>"$LEDGER"
echo "$id"
`

// TestExamplePipeline runs the example pipeline against fakeNode and checks
// that it spawns exactly the seed's task tree, and that every task passes.
func TestExamplePipeline(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteTo(filepath.Join(dir, "s")); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(dir, "bin")
			os.Mkdir(bin, 0o755)
			os.Mkdir(filepath.Join(dir, "state"), 0o755)
			blobs := filepath.Join(dir, "blobs")
			os.Mkdir(blobs, 0o755)
			// Every script runs under the shell being tested.
			ledger := filepath.Join(dir, "ledger")
			ci := filepath.Join(dir, "s", "example", "ci")
			path := bin + ":/usr/bin:/bin"
			fake := strings.NewReplacer("#!/bin/sh", "#!"+sh, "@SH@", sh, "@STATE@", filepath.Join(dir, "state"),
				"@LEDGER@", ledger, "@PATH@", path, "@BLOBS@", blobs,
				"@AGENT@", filepath.Join(dir, "s", "example", "agents", "esp8266_agent.sh")).Replace(fakeNode)
			writeExec(t, filepath.Join(bin, "ourci-node"), fake)
			cmd := exec.Command(filepath.Join(bin, "ourci-node"), "spawn", "-t", "ourci/build/docker",
				"--env", "BASE_SDK=base:1", "--env", "ESP_SDK=esp:2", "--", ci+"/all.sh")
			cmd.Env = []string{"PATH=" + path}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("spawn: %v\n%s", err, out)
			}
			data, _ := os.ReadFile(ledger)
			tasks := map[string][]string{} // id -> id, parent, topic, image, args, exit
			labels := map[string]string{}  // id -> label
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				f := strings.Split(line, "|")
				tasks[f[0]] = f
				labels[f[0]] = exampleLabel(ci, f[2], f[4])
			}
			want := map[string]string{ // label -> "parent label|image"
				"all": "|", "v7": "all|base:1", "mongoose": "all|base:1", "cloud": "all|base:1", "fw": "all|base:1",
				"posix": "fw|base:1", "esp8266": "fw|esp:2", "esp8266-ota": "fw|esp:2",
				"test esp8266": "esp8266|", "test esp8266-ota": "esp8266-ota|",
			}
			seen := map[string]bool{}
			for id, f := range tasks {
				l := labels[id]
				if seen[l] {
					t.Errorf("task %s duplicates %q", id, l)
				}
				seen[l] = true
				if got := labels[f[1]] + "|" + f[3]; got != want[l] {
					t.Errorf("task %s (%s, args %q): parent|image %q, want %q", id, l, f[4], got, want[l])
				}
				if f[5] != "0" {
					out, _ := os.ReadFile(filepath.Join(dir, "state", id))
					t.Errorf("task %s (%s) exited %s:\n%s", id, l, f[5], out)
				}
			}
			if len(tasks) != len(want) || len(seen) != len(want) {
				t.Errorf("got %d tasks (%v), want the %d of the seed's tree\n%s", len(tasks), labels, len(want), data)
			}

			// The hand-off: each esp8266 build uploaded its firmware and the
			// driver under names, and its test fetched both and verified it.
			driver, _ := os.ReadFile(filepath.Join(ci, "fw", "esp8266_test_driver.sh"))
			for id, f := range tasks {
				variant, ok := strings.CutPrefix(labels[id], "test ")
				if !ok {
					continue
				}
				if want := "fw-" + variant + ".tar.gz test-driver-" + variant + ".sh"; f[4] != want {
					t.Errorf("task %s (%s): args %q, want %q", id, labels[id], f[4], want)
				}
				out, _ := os.ReadFile(filepath.Join(dir, "state", id))
				for _, line := range []string{
					"esp8266_agent: args: " + f[4] + "\n",
					"esp8266_test_driver: the board runs: firmware " + variant + " OTA=",
					"esp8266_test_driver: PASS " + variant + ": firmware verified",
				} {
					if !strings.Contains(string(out), line) {
						t.Errorf("task %s (%s): output lacks %q:\n%s", id, labels[id], line, out)
					}
				}
				got, err := os.ReadFile(filepath.Join(blobs, "test-driver-"+variant+".sh"))
				if err != nil || string(got) != string(driver) {
					t.Errorf("blob test-driver-%s.sh: %v; want the driver's bytes", variant, err)
				}
				if _, err := os.Stat(filepath.Join(blobs, "fw-"+variant+".tar.gz")); err != nil {
					t.Errorf("blob fw-%s.tar.gz: %v", variant, err)
				}
			}
		})
	}
}

// exampleLabel names an example task by its topic and args; a hardware test
// "test VARIANT" after its first arg fw-VARIANT.tar.gz.
func exampleLabel(ci, topic, args string) string {
	if topic == "ourci/test/esp-12e" {
		fw, _, _ := strings.Cut(args, " ")
		return "test " + strings.TrimSuffix(strings.TrimPrefix(fw, "fw-"), ".tar.gz")
	}
	switch args {
	case "OTA=1 " + ci + "/fw/esp8266.sh":
		return "esp8266-ota"
	case ci + "/fw/esp8266.sh":
		return "esp8266"
	case ci + "/fw/posix.sh":
		return "posix"
	}
	return strings.TrimSuffix(strings.TrimPrefix(args, ci+"/"), ".sh")
}
