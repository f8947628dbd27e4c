package scripts

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out") // WriteTo creates it
	if err := WriteTo(dir); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	want := []string{
		"functions.sh",
		"example/ci/all.sh",
		"example/ci/v7.sh",
		"example/ci/mongoose.sh",
		"example/ci/cloud.sh",
		"example/ci/fw.sh",
		"example/ci/fw/posix.sh",
		"example/ci/fw/esp8266.sh",
		"example/ci/fw/esp8266_test_driver.sh",
		"example/agents/esp8266_agent.sh",
	}
	for _, rel := range want {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if st.Mode().Perm()&0o111 != 0o111 {
			t.Errorf("%s: mode %v, want executable by all", rel, st.Mode())
		}
		got, _ := os.ReadFile(path)
		orig, err := os.ReadFile(filepath.FromSlash(rel)) // the source tree beside this test
		if err != nil {
			t.Errorf("%s: reading the source: %v", rel, err)
		} else if !bytes.Equal(got, orig) {
			t.Errorf("%s: written content differs from the source file", rel)
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

// TestSourceScriptsExecutable keeps the checked-in scripts chmod +x and strict:
// every example script runs under `set -eu`.
func TestSourceScriptsExecutable(t *testing.T) {
	err := filepath.WalkDir("example", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sh") {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s is not executable", path)
		}
		data, _ := os.ReadFile(path)
		if !bytes.HasPrefix(data, []byte("#!/bin/sh\n")) || !bytes.Contains(data, []byte("\nset -eu\n")) {
			t.Errorf("%s: want a #!/bin/sh line and set -eu", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
