package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// taskUser returns the account "nobody", skipping the test unless it runs
// as root (only root can run a task as another user).
func taskUser(t *testing.T) *User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: running tasks as another user needs root")
	}
	u, err := LookupUser("nobody")
	if err != nil {
		t.Skipf("SKIPPED: no user nobody: %v", err)
	}
	return u
}

// reachable makes a fresh directory whose ancestors everyone may traverse
// (t.TempDir's are 0700), as a node's work directory must be for its task
// user.
func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(d) == os.TempDir() {
			break
		}
	}
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestHostTaskUser: with Host.User a task runs as that user and its groups,
// owns its workspace (handed over before it starts), and cannot read what
// the node keeps to itself: a 0700 directory (the data directory), a 0600
// file (the secret), the node's /proc/PID/environ, nor change a git object
// its checkout shares with the node's mirror. With a cgroup it cannot move
// itself out of it. As the node's own user (root), every one of these
// succeeds.
func TestHostTaskUser(t *testing.T) {
	u := taskUser(t)
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil { // as the node keeps DATA_DIR
		t.Fatal(err)
	}
	secret := filepath.Join(private, "cluster.secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(private, "objects")
	if err := os.Mkdir(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(mirror, "pack")
	if err := os.WriteFile(shared, []byte("object\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(mirror, "closed") // not world-readable: the task gets a copy
	if err := os.WriteFile(closed, []byte("closed object\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	ws := reachable(t)
	if err := os.WriteFile(filepath.Join(ws, "checked-out"), []byte("src\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{shared, closed} {
		if err := os.Link(f, filepath.Join(ws, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	var c *Cgroups
	if _, err := cgroup2Mount(); err == nil {
		c = newCgroups(t)
	}
	script := fmt.Sprintf(`echo "id=$(id -u):$(id -g) home=$HOME user=${USER-}"
echo made > made && echo "made=$(stat -c %%u:%%g made)"
echo "src=$(stat -c %%u checked-out) $(echo edit >> checked-out && echo src-writable)"
cat %[1]s 2>/dev/null && echo READ-SECRET
ls %[2]s >/dev/null 2>&1 && echo LISTED-DATA-DIR
cat /proc/%[3]d/environ >/dev/null 2>&1 && echo READ-NODE-ENVIRON
cat pack && { echo tampered >> pack; } 2>/dev/null && echo WROTE-SHARED-OBJECT
cat closed
if [ -n "%[4]s" ]; then { echo $$ > %[4]s/cgroup.procs; } 2>/dev/null && echo LEFT-CGROUP; fi
exit 0`, secret, private, os.Getpid(), cgroupParent(c))
	var out syncBuffer
	p, err := Host{User: u, Cgroups: c}.Start(context.Background(), Spec{
		Args: []string{script}, Env: []string{testPath, "HOME=/root", "USER=root"}, Dir: ws, Output: &out,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := waitCode(t, p); got != 0 {
		t.Errorf("exit code: got %d, want 0; output:\n%s", got, out.String())
	}
	if err := p.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	ids := fmt.Sprintf("%d:%d", u.UID, u.GID)
	want := fmt.Sprintf("id=%s home=%s user=%s\nmade=%s\nsrc=%d src-writable\nobject\nclosed object\n", ids, ws, u.Name, ids, u.UID)
	if u.Home != "" {
		if fi, err := os.Stat(u.Home); err == nil && fi.IsDir() {
			want = strings.Replace(want, "home="+ws, "home="+u.Home, 1)
		}
	}
	if got := out.String(); got != want {
		t.Errorf("the task's output:\n got %q\nwant %q", got, want)
	}
	if b, err := os.ReadFile(shared); err != nil || string(b) != "object\n" {
		t.Errorf("the mirror's object: got %q, %v; want it unchanged", b, err)
	}
	for _, f := range []string{shared, closed} {
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err != nil || st.Uid != 0 {
			t.Errorf("%s: owner %d (%v), want still root", f, st.Uid, err)
		}
	}
	if fi, err := os.Stat(ws); err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != u.UID {
		t.Errorf("workspace %s: %v %v, want 0700 owned by %d", ws, fi.Mode(), err, u.UID)
	}
}

// cgroupParent is the cgroup a task would escape to: the node's own.
func cgroupParent(c *Cgroups) string {
	if c == nil {
		return ""
	}
	return c.Dir()
}

func TestLookupUser(t *testing.T) {
	nobody, err := LookupUser("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	byID, err := LookupUser(fmt.Sprint(nobody.UID))
	if err != nil || byID.UID != nobody.UID || byID.GID != nobody.GID {
		t.Errorf("LookupUser(%d): got %+v, %v; want %+v", nobody.UID, byID, err, nobody)
	}
	for _, name := range []string{"root", "0"} {
		if _, err := LookupUser(name); !errors.Is(err, ErrRootUser) {
			t.Errorf("LookupUser(%q): got %v, want ErrRootUser", name, err)
		}
	}
	if _, err := LookupUser("ourci-no-such-user"); err == nil {
		t.Error("LookupUser of a missing user: got nil error")
	}
}
