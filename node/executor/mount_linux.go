package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// statfs flags (statvfs(3) ST_*) as mount(2) flags.
var statfsToMount = []struct{ st, ms uintptr }{
	{1, syscall.MS_RDONLY},        // ST_RDONLY
	{2, syscall.MS_NOSUID},        // ST_NOSUID
	{4, syscall.MS_NODEV},         // ST_NODEV
	{8, syscall.MS_NOEXEC},        // ST_NOEXEC
	{1024, syscall.MS_NOATIME},    // ST_NOATIME
	{2048, syscall.MS_NODIRATIME}, // ST_NODIRATIME
	{4096, syscall.MS_RELATIME},   // ST_RELATIME
}

// mountNosuid makes dir a bind mount of itself with nosuid and nodev added
// to the flags its file system has, so that a setuid or device file a
// container writes there is inert on the host; a container's bind mount of
// dir (or below) inherits both flags. The returned func detaches the mount.
func mountNosuid(dir string) (undo func() error, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("executor: workspace %s: %w", dir, err)
	}
	flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_NOSUID | syscall.MS_NODEV)
	for _, f := range statfsToMount {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("executor: bind-mount workspace %s nosuid: %w", dir, err)
	}
	undo = func() error {
		err := syscall.Unmount(dir, syscall.MNT_DETACH)
		if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) { // not mounted (any more)
			return nil
		}
		return fmt.Errorf("executor: unmount workspace %s: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", flags, ""); err != nil {
		undo()
		return nil, fmt.Errorf("executor: remount workspace %s nosuid,nodev: %w", dir, err)
	}
	return undo, nil
}

// UnmountBelow detaches every mount strictly below dir (the workspaces of a
// node that crashed while its containers ran); dir itself is left alone, as
// an operator may have mounted a disk there. It returns how many it
// unmounted.
func UnmountBelow(dir string) (int, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, fmt.Errorf("executor: %w", err)
	}
	var below []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		if p := unescapeMount(f[4]); strings.HasPrefix(p, dir+"/") {
			below = append(below, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(below))) // deepest first
	n := 0
	var errs []error
	for _, p := range below {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err == nil {
			n++
		} else if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("executor: unmount %s: %w", p, err))
		}
	}
	return n, errors.Join(errs...)
}
