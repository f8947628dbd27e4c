// Package scripts carries the shell side of OurCI: functions.sh for build
// scripts and the example pipeline of the seed, embedded so that the
// ourci-node binary can write them out for a demo.
package scripts

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS holds functions.sh and the example/ tree, with paths relative to this directory.
//
//go:embed functions.sh example
var FS embed.FS

// WriteTo writes the embedded tree into dir (created if missing), keeping its
// layout: dir/functions.sh, dir/example/ci/all.sh, and so on. Files ending in
// .sh get mode 0755 and others 0644; existing files are overwritten.
func WriteTo(dir string) error {
	return fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := FS.ReadFile(path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(target, data, mode); err != nil {
			return fmt.Errorf("scripts: %w", err)
		}
		// WriteFile applies the umask and leaves an existing file's mode alone.
		return os.Chmod(target, mode)
	})
}
