package scripts

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles are the seed's printed scripts, as WriteTo lays them out.
var seedFiles = []string{
	"example/seed/ci/all.sh", "example/seed/ci/v7.sh", "example/seed/ci/fw.sh",
	"example/seed/ci/fw/esp8266.sh", "example/seed/ci/fw/esp8266_test_driver.sh",
	"example/seed/agents/ourci_esp8266_agent.sh",
}

func TestWriteTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out") // WriteTo creates it
	if err := WriteTo(dir); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	for _, tt := range []struct {
		rel  string
		mode os.FileMode
	}{
		{"functions.sh", 0o755},
		{"example/README.md", 0o644},
		{"example/standin/repo/ci/mongoose.sh", 0o755},
		{"example/standin/repo/fw/platforms/esp8266/Makefile.build", 0o644},
		{"example/standin/build/bin/MAKE", 0o755},
		{"example/standin/build/bin/CI_BRANCH", 0o755},
		{"example/standin/rig/bin/esptool.sh", 0o755},
		{"example/standin/rig/bin/cadaver", 0o755},
		{seedFiles[0], 0o755}, {seedFiles[1], 0o755}, {seedFiles[2], 0o755},
		{seedFiles[3], 0o755}, {seedFiles[4], 0o755}, {seedFiles[5], 0o755},
	} {
		path := filepath.Join(dir, filepath.FromSlash(tt.rel))
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", tt.rel, err)
			continue
		}
		if st.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.rel, st.Mode().Perm(), tt.mode)
		}
		got, _ := os.ReadFile(path)
		orig, err := os.ReadFile(filepath.FromSlash(tt.rel)) // the source tree beside this test
		if err != nil {
			t.Errorf("%s: reading the source: %v", tt.rel, err)
		} else if !bytes.Equal(got, orig) {
			t.Errorf("%s: written content differs from the source file", tt.rel)
		}
	}
	// Writing again over an existing tree works and keeps the modes.
	os.Chmod(filepath.Join(dir, "functions.sh"), 0o600)
	if err := WriteTo(dir); err != nil {
		t.Fatalf("second WriteTo: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "functions.sh")); st.Mode().Perm() != 0o755 {
		t.Errorf("functions.sh after rewrite: mode %v, want 0755", st.Mode())
	}
}

// TestWriteSeedRepo: the seed's repository has the printed scripts where
// they source functions.sh from, a copy of functions.sh at each place
// they look, the stand-in tree, and the name the seed uploads the driver
// under; writing it twice works.
func TestWriteSeedRepo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	for round := 1; round <= 2; round++ {
		if err := WriteSeedRepo(dir); err != nil {
			t.Fatalf("WriteSeedRepo, round %d: %v", round, err)
		}
	}
	for _, f := range seedFiles[:5] {
		rel := strings.TrimPrefix(f, "example/seed/")
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		want, _ := FS.ReadFile(f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v; want the bytes of %s", rel, err, f)
		}
	}
	for _, p := range VendorPaths {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, Functions()) {
			t.Errorf("%s: %v; want functions.sh", p, err)
		}
		// Where `. $(dirname $0)/ourci/scripts/functions.sh` of a printed
		// script in that directory looks.
		script := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(p, "ourci/scripts/functions.sh")))
		if _, err := os.Stat(script); err != nil {
			t.Errorf("%s: no directory of scripts beside it: %v", p, err)
		}
	}
	driver, _ := os.ReadFile(filepath.Join(dir, "ci", "fw", "esp8266_test_driver.sh"))
	if got, err := os.ReadFile(filepath.Join(dir, "ci.fw.esp8266_test_driver.sh")); err != nil || !bytes.Equal(got, driver) || len(driver) == 0 {
		t.Errorf("ci.fw.esp8266_test_driver.sh: %v; want the driver", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "ci.fw.esp8266_test_driver.sh")); err != nil || target != "ci/fw/esp8266_test_driver.sh" {
		t.Errorf("ci.fw.esp8266_test_driver.sh links to %q (%v), want the relative ci/fw/esp8266_test_driver.sh", target, err)
	}
	for _, rel := range []string{"v7/Makefile", "v7/tests/ecma_report.txt", "fw/platforms/esp8266/Makefile.build", "ci/fw/posix.sh", "ci/VERSION"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			t.Errorf("stand-in %s: %v", rel, err)
		}
	}
}

func TestVendor(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ci", "fw", "ourci", "scripts", "functions.sh")
	if err := Vendor(file); err != nil {
		t.Fatal(err)
	}
	os.Chmod(file, 0o600)
	if err := Vendor(file); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o644 || !bytes.Equal(got, Functions()) {
		t.Errorf("got %v, %d bytes; want functions.sh, mode 0644", err, len(got))
	}
	if err := Vendor(filepath.Join(file, "x")); err == nil || !strings.HasPrefix(err.Error(), "scripts: ") {
		t.Errorf("vendoring below a file: got %v, want an error from scripts", err)
	}
}

func TestWriteRig(t *testing.T) {
	dir := t.TempDir()
	agent, err := WriteRig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if agent != filepath.Join(dir, AgentScript) {
		t.Errorf("agent %s, want %s", agent, filepath.Join(dir, AgentScript))
	}
	for _, rel := range []string{AgentScript, "bin/esptool.sh", "bin/cadaver"} {
		if st, err := os.Stat(filepath.Join(dir, rel)); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, want it executable", rel, err)
		}
	}
}

// TestSourceModes keeps the checked-in scripts and commands executable, as
// they must be in a repository the nodes check out.
func TestSourceModes(t *testing.T) {
	err := filepath.WalkDir("example", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if exec := st.Mode().Perm()&0o100 != 0; exec != (mode(filepath.ToSlash(path)) == 0o755) {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode(filepath.ToSlash(path)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
