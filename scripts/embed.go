package scripts

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// FS holds functions.sh and the example/ tree, with paths relative to this directory.
//
//go:embed functions.sh example
var FS embed.FS

// Where the parts of the example are in FS.
const (
	// SeedDir holds the seed's scripts as printed: ci/ (they go into the
	// repository) and agents/ (agent B, on the test rig).
	SeedDir = "example/seed"
	// StandinRepoDir is the rest of the seed's repository, a stand-in: the
	// Makefiles and sources the printed scripts build, and the scripts the
	// seed spawns but does not print (ci/mongoose.sh, ci/cloud.sh,
	// ci/fw/posix.sh).
	StandinRepoDir = "example/standin/repo"
	// BuildBinDir holds the commands the build machines need on PATH for
	// the printed scripts: MAKE and CI_BRANCH (ci/v7.sh's Make syntax).
	BuildBinDir = "example/standin/build/bin"
	// RigBinDir holds the test rig's simulated board: esptool.sh, cadaver.
	RigBinDir = "example/standin/rig/bin"
	// AgentScript is the seed's agent B, in SeedDir/agents, run on the rig
	// as `ourci_agent -t ourci/test/esp-12e ourci_esp8266_agent.sh`.
	AgentScript = "ourci_esp8266_agent.sh"
)

// VendorPaths are where the seed's scripts find functions.sh, relative to
// the top of the repository: each sources `$(dirname $0)/ourci/scripts/functions.sh`,
// and $(dirname $0) is the script's own directory, ci/ or ci/fw/.
var VendorPaths = []string{"ci/ourci/scripts/functions.sh", "ci/fw/ourci/scripts/functions.sh"}

// driverLink is the name under which the seed's ci/fw/esp8266.sh uploads
// the test driver (`blob_upload ci.fw.esp8266_test_driver.sh ...`), a
// name no printed file has; the stand-in repository links it to the
// driver, ci/fw/esp8266_test_driver.sh.
const driverLink, driverPath = "ci.fw.esp8266_test_driver.sh", "ci/fw/esp8266_test_driver.sh"

// Functions returns functions.sh.
func Functions() []byte {
	data, err := FS.ReadFile("functions.sh")
	if err != nil {
		panic("scripts: functions.sh is not embedded: " + err.Error()) // a build error, not a runtime one
	}
	return data
}

// Vendor writes functions.sh to file, making its directory, with mode
// 0644 (it is sourced, not run). An existing file is replaced.
func Vendor(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("scripts: %w", err)
	}
	return writeFile(file, Functions(), 0o644)
}

// WriteTo writes the embedded tree into dir (created if missing), keeping its
// layout: dir/functions.sh, dir/example/seed/ci/all.sh, and so on (see mode
// for the modes); existing files are overwritten.
func WriteTo(dir string) error {
	return WriteSub(".", dir)
}

// WriteSub writes the embedded directory sub (e.g. RigBinDir) into dir,
// created if missing: sub/a/b lands in dir/a/b. Files ending in .sh or in
// a directory named bin get mode 0755, others 0644; existing files are
// overwritten.
func WriteSub(sub, dir string) error {
	return fs.WalkDir(FS, sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := p
		if sub != "." {
			rel = strings.TrimPrefix(strings.TrimPrefix(p, sub), "/")
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("scripts: %w", err)
			}
			return nil
		}
		data, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(target, data, mode(p))
	})
}

// mode is the mode WriteSub gives the embedded file p.
func mode(p string) os.FileMode {
	if strings.HasSuffix(p, ".sh") || path.Base(path.Dir(p)) == "bin" {
		return 0o755
	}
	return 0o644
}

func writeFile(target string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(target, data, mode); err != nil {
		return fmt.Errorf("scripts: %w", err)
	}
	// WriteFile applies the umask and leaves an existing file's mode alone.
	if err := os.Chmod(target, mode); err != nil {
		return fmt.Errorf("scripts: %w", err)
	}
	return nil
}

// WriteSeedRepo writes the seed's repository into dir (created if missing),
// as it would be checked in: the stand-in tree (StandinRepoDir), the
// seed's ci/ scripts over it, functions.sh vendored at VendorPaths, and
// the link ci.fw.esp8266_test_driver.sh → ci/fw/esp8266_test_driver.sh.
func WriteSeedRepo(dir string) error {
	if err := WriteSub(StandinRepoDir, dir); err != nil {
		return err
	}
	if err := WriteSub(path.Join(SeedDir, "ci"), filepath.Join(dir, "ci")); err != nil {
		return err
	}
	for _, p := range VendorPaths {
		if err := Vendor(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return err
		}
	}
	link := filepath.Join(dir, driverLink)
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scripts: %w", err)
	}
	if err := os.Symlink(driverPath, link); err != nil {
		return fmt.Errorf("scripts: %w", err)
	}
	return nil
}

// WriteRig writes what the seed's test rig holds into dir: the agent
// script (dir/ourci_esp8266_agent.sh) and the simulated board's tools
// (dir/bin/esptool.sh, dir/bin/cadaver), which must be on the rig node's
// PATH. It returns the agent script's path.
func WriteRig(dir string) (agent string, err error) {
	if err := WriteSub(path.Join(SeedDir, "agents"), dir); err != nil {
		return "", err
	}
	if err := WriteSub(RigBinDir, filepath.Join(dir, "bin")); err != nil {
		return "", err
	}
	return filepath.Join(dir, AgentScript), nil
}
