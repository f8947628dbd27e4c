package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrRootUser is returned by LookupUser for an account with uid 0 or gid 0:
// a task user exists to take root away.
var ErrRootUser = errors.New("executor: a task user must not be root")

// User is the unprivileged account Host runs tasks as (--task-user).
type User struct {
	Name   string   // login name ("" if the uid has none)
	UID    uint32   // user ID; never 0
	GID    uint32   // primary group ID; never 0
	Groups []uint32 // supplementary group IDs (root's group 0 is never among them)
	Home   string   // home directory from the account database ("" if none)
}

// LookupUser resolves name (a login name, or a numeric uid) in the
// account database, with its primary and supplementary groups.
func LookupUser(name string) (*User, error) {
	if name == "" {
		return nil, errors.New("executor: no task user given")
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil && errors.As(err, &unknown) {
			u, err = user.LookupId(name)
		}
		if err != nil {
			return nil, fmt.Errorf("executor: task user %q: %w", name, err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("executor: task user %q: not a numeric uid:gid (%s:%s)", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("%w: %q is uid %d gid %d", ErrRootUser, name, uid, gid)
	}
	tu := &User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("executor: task user %q: groups: %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("executor: task user %q: group %q: not numeric", name, s)
		}
		if g == 0 {
			return nil, fmt.Errorf("%w: %q is in group 0", ErrRootUser, name)
		}
		if uint32(g) != tu.GID {
			tu.Groups = append(tu.Groups, uint32(g))
		}
	}
	return tu, nil
}

// String is how logs and errors name the user.
func (u *User) String() string {
	if u.Name != "" {
		return fmt.Sprintf("%s (%d:%d)", u.Name, u.UID, u.GID)
	}
	return fmt.Sprintf("%d:%d", u.UID, u.GID)
}

// credential is the user as the kernel sets it on the child.
func (u *User) credential() *syscall.Credential {
	groups := append([]uint32(nil), u.Groups...)
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: groups}
}

// env returns env with HOME, USER and LOGNAME of the task user: HOME is the
// account's home if it is a directory, else the workspace dir.
func (u *User) env(env []string, dir string) []string {
	home := dir
	if fi, err := os.Stat(u.Home); u.Home != "" && err == nil && fi.IsDir() {
		home = u.Home
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		switch k, _, _ := cutEnv(kv); k {
		case "HOME", "USER", "LOGNAME":
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+home)
	if u.Name != "" {
		out = append(out, "USER="+u.Name, "LOGNAME="+u.Name)
	}
	return out
}

func cutEnv(kv string) (k, v string, ok bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// handOver gives the tree at dir to uid:gid, so that a task running as that
// user owns its workspace: dir itself gets mode 0700. Symbolic links are
// changed, never followed. A regular file with other hard links (a git
// object linked from the node's mirror by `git clone --local`) is shared
// with the node and never chowned, so the task cannot change the original:
// it is left as it is when anyone may read it (git makes objects 0444), and
// replaced by a copy of its own otherwise.
func handOver(dir string, uid, gid int) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if fi.Mode().Perm()&0o004 != 0 || int(st.Uid) == uid {
				return nil
			}
			return unshare(p, fi, uid, gid)
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("executor: hand workspace %s to %d:%d: %w", dir, uid, gid, err)
	}
	return os.Chmod(dir, 0o700)
}

// unshare replaces the hard link at p by a copy owned by uid:gid, with the
// same mode (a git object stays read-only).
func unshare(p string, fi fs.FileInfo, uid, gid int) error {
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".ourci-copy-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = tmp.Chown(uid, gid)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
