package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// shell runs the shell form, non-executable scripts and ENOEXEC fallbacks.
const shell = "/bin/sh"

// xOK is access(2)'s X_OK.
const xOK = 1

// Host runs tasks as processes on this machine. The zero Host runs each
// attempt in a process group of its own, as the node's user.
type Host struct {
	// Cgroups, if set, puts each attempt in a cgroup of its own under it
	// (born there: clone3 with CLONE_INTO_CGROUP), which is killed whole
	// when the attempt ends, is stopped or destroyed.
	Cgroups *Cgroups
	// User, if set, runs tasks as this unprivileged user: Start hands the
	// workspace (Spec.Dir) over to it and sets HOME, USER and LOGNAME.
	User *User
}

// Start starts the attempt described by s in a new process group (and
// cgroup). It fails, without starting anything, when ctx is already done,
// when s names no command, when the script or command cannot be found, or
// when the process (or its cgroup) cannot be created.
func (h Host) Start(ctx context.Context, s Spec) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("executor: not started: %w", err)
	}
	path, argv, err := command(s)
	if err != nil {
		return nil, err
	}
	env := s.Env
	if env == nil {
		env = []string{} // a nil Env would make os/exec inherit the node's environment
	}
	attr := syscall.SysProcAttr{Setpgid: true}
	if u := h.User; u != nil {
		if s.Dir != "" {
			if err := handOver(s.Dir, int(u.UID), int(u.GID)); err != nil {
				return nil, err
			}
		}
		env = u.env(env, s.Dir)
		attr.Credential = u.credential()
	}
	var cg *cgroup
	if h.Cgroups != nil {
		if cg, err = h.Cgroups.create(attemptName(s)); err != nil {
			return nil, err
		}
		fd, err := cg.open()
		if err != nil {
			cg.remove(time.Now())
			return nil, err
		}
		defer syscall.Close(fd) // the child is in the cgroup once started
		attr.UseCgroupFD, attr.CgroupFD = true, fd
	}
	p, err := h.start(ctx, s, path, argv, env, &attr, cg)
	if err != nil && cg != nil {
		cg.destroy()
	}
	return p, err
}

// attemptName names an attempt's cgroup after its task and attempt labels.
func attemptName(s Spec) string {
	task, attempt := s.Labels["ourci.task"], s.Labels["ourci.attempt"]
	if task == "" {
		return "attempt"
	}
	return task + "." + attempt
}

func (h Host) start(ctx context.Context, s Spec, path string, argv, env []string, attr *syscall.SysProcAttr, cg *cgroup) (Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("executor: output pipe: %w", err)
	}
	newCmd := func(path string, argv []string) *exec.Cmd {
		return &exec.Cmd{
			Path:        path,
			Args:        argv,
			Env:         env,
			Dir:         s.Dir,
			Stdout:      w, // an *os.File: handed to the child as is, no copying goroutine in os/exec
			Stderr:      w,
			SysProcAttr: attr,
		}
	}
	cmd := newCmd(path, argv)
	err = cmd.Start()
	if errors.Is(err, syscall.ENOEXEC) { // an executable without "#!": a shell script, as sh would decide
		cmd = newCmd(shell, append([]string{shell, path}, argv[1:]...))
		err = cmd.Start()
	}
	w.Close() // the child holds its own copies
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("executor: start %q: %w", name(s), err)
	}
	p := newHostProcess(cmd, r, s.Output, s.grace(), cg)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				p.Stop()
			case <-p.done:
			}
		}()
	}
	return p, nil
}

// command returns the executable and argv for s, following the rules in the
// package documentation.
func command(s Spec) (path string, argv []string, err error) {
	if s.Script != "" {
		script, err := filepath.Abs(s.Script)
		if err != nil {
			return "", nil, fmt.Errorf("executor: agent script %s: %w", s.Script, err)
		}
		fi, err := os.Stat(script)
		if err != nil {
			return "", nil, fmt.Errorf("executor: agent script %s: %w", s.Script, err)
		}
		if fi.IsDir() {
			return "", nil, fmt.Errorf("executor: agent script %s is a directory", s.Script)
		}
		if syscall.Access(script, xOK) == nil {
			return script, append([]string{script}, s.Args...), nil
		}
		return shell, append([]string{shell, script}, s.Args...), nil
	}
	switch len(s.Args) {
	case 0:
		return "", nil, errors.New("executor: no command: spec has neither args nor script")
	case 1:
		return shell, []string{shell, "-c", s.Args[0]}, nil
	}
	path, err = lookPath(s.Args[0], s.Env)
	if err != nil {
		return "", nil, err
	}
	return path, append([]string(nil), s.Args...), nil
}

// lookPath resolves name like exec.LookPath, but through the PATH in env.
// A name containing a slash is returned unchanged (relative to Spec.Dir).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(getenv(env, "PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && syscall.Access(p, xOK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("executor: %q not found in the task's PATH: %w", name, exec.ErrNotFound)
}

// name is how errors refer to the command of s.
func name(s Spec) string {
	if s.Script != "" {
		return s.Script
	}
	return s.Args[0]
}

// getenv returns the value of key in env; the last entry wins, as in os/exec.
func getenv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// drain copies r to w until EOF or until r is closed, then closes copied.
func drain(r io.Reader, w io.Writer, copied chan<- struct{}) {
	defer close(copied)
	_, _ = io.Copy(&drainWriter{w: w}, r)
}
