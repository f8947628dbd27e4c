package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrNoCgroups marks the failure to use cgroup v2 for host tasks: no
// cgroup2 file system is mounted, or this process may not make cgroups in
// it (not root), or the kernel lacks what containment needs.
var ErrNoCgroups = errors.New("executor: cgroup v2 is not usable")

// CgroupRoot is the directory, under the cgroup2 mount, that holds one
// cgroup per node (OpenCgroups).
const CgroupRoot = "ourci"

// cgroupDelay bounds how long killing a cgroup waits for its processes to
// be gone (a process in uninterruptible sleep dies when its I/O ends).
const cgroupDelay = 10 * time.Second

// Cgroups is a node's own cgroup v2 directory, CGROUP2_MOUNT/ourci/NAME.
// Host runs every attempt in a fresh child of it, so that stopping the
// attempt kills every process it made, in its process group or not (setsid,
// double forks, daemons), and a node that crashed finds the attempts of its
// previous life in it (Sweep). Only this node's processes ever run in it.
type Cgroups struct {
	dir     string
	hasKill bool // cgroup.kill (Linux 5.14); without it: freeze, SIGKILL, thaw
	seq     atomic.Uint64
}

// OpenCgroups makes (or reuses) the node's cgroup CGROUP2_MOUNT/ourci/name
// and checks that attempts can be put into children of it and killed. name
// must be a single path element unique to the node on this machine (the
// caller adds its data directory's identity to the node's name). Errors
// wrap ErrNoCgroups when cgroup v2 cannot be used here.
func OpenCgroups(name string) (*Cgroups, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("executor: cgroup name %q: want one path element", name)
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(mnt, CgroupRoot, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: make %s: %w", ErrNoCgroups, dir, err)
	}
	c := &Cgroups{dir: dir}
	_, err = os.Stat(filepath.Join(dir, "cgroup.kill"))
	c.hasKill = err == nil
	if !c.hasKill {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
			return nil, fmt.Errorf("%w: %s has neither cgroup.kill nor cgroup.freeze (Linux 5.2 or later needed)", ErrNoCgroups, dir)
		}
	}
	// Moving a process needs write access to cgroup.procs: try with a
	// child and no process (an empty write is refused, so write nothing).
	probe, err := c.create("probe")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroups, err)
	}
	f, err := os.OpenFile(filepath.Join(probe.dir, "cgroup.procs"), os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	if rerr := probe.remove(time.Now().Add(cgroupDelay)); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroups, err)
	}
	return c, nil
}

// Dir is the node's cgroup directory.
func (c *Cgroups) Dir() string { return c.dir }

// Sweep kills every process in the attempt cgroups under c (the leftovers of
// a previous life of the node, which crashed) and removes them. It returns
// how many of them still held processes. Run it when the node starts, before
// it starts tasks.
func (c *Cgroups) Sweep() (killed int, err error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("executor: sweep cgroup %s: %w", c.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		g := &cgroup{dir: filepath.Join(c.dir, e.Name()), hasKill: c.hasKill}
		if g.populated() {
			killed++
		}
		if err := g.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	return killed, errors.Join(errs...)
}

// Close removes the node's cgroup once no attempt cgroup is left in it (a
// running attempt keeps it). Safe to call twice.
func (c *Cgroups) Close() error {
	err := syscall.Rmdir(c.dir)
	if err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EBUSY) {
		return nil
	}
	return fmt.Errorf("executor: remove cgroup %s: %w", c.dir, err)
}

// create makes a fresh attempt cgroup named after name (a suffix is added
// if a leftover has that name).
func (c *Cgroups) create(name string) (*cgroup, error) {
	name = cgroupName(name)
	for i := 0; ; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s~%d", name, c.seq.Add(1))
		}
		dir := filepath.Join(c.dir, n)
		err := syscall.Mkdir(dir, 0o755)
		if err == nil {
			return &cgroup{dir: dir, hasKill: c.hasKill}, nil
		}
		if !errors.Is(err, syscall.EEXIST) || i >= 100 {
			return nil, fmt.Errorf("executor: make cgroup %s: %w", dir, err)
		}
	}
}

// cgroupName turns a label into a safe cgroup directory name.
func cgroupName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		b = append([]byte("a"), b...)
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// cgroup2Mount finds where the cgroup2 file system is mounted: /sys/fs/cgroup
// on a unified system, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoCgroups, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return unescapeMount(f[4]), nil
		}
	}
	return "", fmt.Errorf("%w: no cgroup2 file system is mounted", ErrNoCgroups)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroup is one attempt's cgroup.
type cgroup struct {
	dir     string
	hasKill bool
}

// open returns a descriptor of the cgroup's directory for clone3's
// CLONE_INTO_CGROUP: the child is born in the cgroup, so nothing it does
// can happen outside it.
func (g *cgroup) open() (int, error) {
	fd, err := syscall.Open(g.dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("executor: open cgroup %s: %w", g.dir, err)
	}
	return fd, nil
}

// kill sends SIGKILL to every process in the cgroup and its descendants.
// A cgroup that is gone holds nothing to kill.
func (g *cgroup) kill() error {
	if g.hasKill {
		err := writeCgroupFile(g.dir, "cgroup.kill", "1")
		if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
			return nil
		}
		return fmt.Errorf("executor: kill cgroup %s: %w", g.dir, err)
	}
	return g.freezeKill()
}

// freezeKill kills without cgroup.kill: freeze the cgroup (so nothing in it
// forks or exits meanwhile), SIGKILL every process it lists (a frozen process
// cannot exit, so its PID cannot be recycled before the signal), thaw it so
// the killed processes die, and repeat while any is left. Nested cgroups are
// handled one by one, deepest first.
func (g *cgroup) freezeKill() error {
	var errs []error
	_ = filepath.WalkDir(g.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != g.dir {
			errs = append(errs, (&cgroup{dir: p}).freezeKill())
			return fs.SkipDir
		}
		return nil
	})
	end := time.Now().Add(cgroupDelay)
	for {
		if err := writeCgroupFile(g.dir, "cgroup.freeze", "1"); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
				return errors.Join(errs...)
			}
			return fmt.Errorf("executor: freeze cgroup %s: %w", g.dir, err)
		}
		g.waitEvent("frozen", "1", time.Now().Add(time.Second))
		b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = writeCgroupFile(g.dir, "cgroup.freeze", "0")
		if err != nil || len(pids) == 0 {
			return errors.Join(errs...)
		}
		if g.waitEvent("populated", "0", time.Now().Add(100*time.Millisecond)) {
			return errors.Join(errs...)
		}
		if time.Now().After(end) {
			return fmt.Errorf("executor: cgroup %s: processes left after SIGKILL: %s", g.dir, strings.Join(pids, " "))
		}
	}
}

// populated reports whether a process is still in the cgroup or below it.
func (g *cgroup) populated() bool { return g.event("populated") == "1" }

// event returns the value of key in cgroup.events ("" if unreadable).
func (g *cgroup) event(key string) string {
	b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.events"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return v
		}
	}
	return ""
}

// waitEvent polls cgroup.events until key has value (true) or until end
// (false). A cgroup that is gone counts as empty and thawed.
func (g *cgroup) waitEvent(key, value string, end time.Time) bool {
	pause := time.Millisecond
	for {
		v := g.event(key)
		if v == value || v == "" {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// destroy kills what is left in the cgroup, waits (bounded) until it is
// empty and removes it with any cgroups made below it.
func (g *cgroup) destroy() error {
	killErr := g.kill()
	end := time.Now().Add(cgroupDelay)
	if !g.waitEvent("populated", "0", end) {
		b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		return errors.Join(killErr, fmt.Errorf("executor: cgroup %s still holds processes %s %v after SIGKILL", g.dir, strings.Fields(string(b)), cgroupDelay))
	}
	return errors.Join(killErr, g.remove(end))
}

// remove removes the (empty) cgroup and the cgroups below it, deepest
// first, retrying while the kernel still counts a dying process.
func (g *cgroup) remove(end time.Time) error {
	entries, _ := os.ReadDir(g.dir)
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, (&cgroup{dir: filepath.Join(g.dir, e.Name()), hasKill: g.hasKill}).remove(end))
		}
	}
	pause := time.Millisecond
	for {
		err := syscall.Rmdir(g.dir)
		switch {
		case err == nil || errors.Is(err, syscall.ENOENT):
			return errors.Join(errs...)
		case !errors.Is(err, syscall.EBUSY) || time.Now().After(end):
			return errors.Join(append(errs, fmt.Errorf("executor: remove cgroup %s: %w", g.dir, err))...)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// writeCgroupFile writes value to the control file name of dir.
func writeCgroupFile(dir, name, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
