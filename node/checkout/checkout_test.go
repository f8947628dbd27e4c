package checkout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Isolate every git this test binary runs, the package's included, from
	// the machine's configuration.
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// git runs git in dir and returns its trimmed stdout, failing the test on error.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s (in %s): %v: %s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// upstream is a bare repository standing in for GitHub, fed from a work tree.
type upstream struct {
	t    testing.TB
	bare string // the bare repository (a local path)
	work string
}

// newUpstream makes a bare repo with main = c1-c2-c3 and feature = c2-f1.
func newUpstream(t testing.TB) (u *upstream, main, feature string) {
	t.Helper()
	root := t.TempDir()
	u = &upstream{t: t, bare: filepath.Join(root, "up.git"), work: filepath.Join(root, "work")}
	git(t, root, "init", "-q", "--bare", "-b", "main", u.bare)
	git(t, root, "init", "-q", "-b", "main", u.work)
	git(t, u.work, "remote", "add", "origin", u.bare)
	u.commit("README", "hello\n")
	c2 := u.commit("src/a.txt", "a\n")
	git(t, u.work, "checkout", "-q", "-b", "feature")
	feature = u.commit("feature.txt", "f1\n")
	git(t, u.work, "checkout", "-q", "main")
	main = u.commit("src/b.txt", "b\n")
	_ = c2
	git(t, u.work, "push", "-q", "origin", "main", "feature")
	return u, main, feature
}

// commit writes file on the work tree's current branch, commits and returns the sha (not pushed).
func (u *upstream) commit(file, content string) string {
	u.t.Helper()
	p := filepath.Join(u.work, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		u.t.Fatal(err)
	}
	git(u.t, u.work, "add", "-A")
	git(u.t, u.work, "commit", "-q", "-m", "add "+file)
	return git(u.t, u.work, "rev-parse", "HEAD")
}

// pushNew commits on main, pushes it and returns its sha.
func (u *upstream) pushNew(file string) string {
	u.t.Helper()
	sha := u.commit(file, file+"\n")
	git(u.t, u.work, "push", "-q", "origin", "main")
	return sha
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestResolve(t *testing.T) {
	t.Parallel()
	u, main, feature := newUpstream(t)
	ctx := ctxT(t)
	git(t, u.work, "tag", "-a", "-m", "v1", "v1", main)
	git(t, u.work, "tag", "light", feature)
	git(t, u.work, "push", "-q", "origin", "v1", "light")

	for _, tc := range []struct {
		rev, want string
	}{
		{"main", main},
		{"feature", feature},
		{"refs/heads/feature", feature},
		{"v1", main}, // annotated tag: the commit, not the tag object
		{"refs/tags/v1", main},
		{"light", feature},
		{"", main}, // the remote's HEAD
		{"HEAD", main},
	} {
		got, err := Resolve(ctx, "", u.bare, tc.rev)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.rev, got, err, tc.want)
		}
	}
	got, err := Resolve(ctx, "", "file://"+u.bare, "feature")
	if err != nil || got != feature {
		t.Errorf("Resolve(file URL, feature) = %q, %v; want %q", got, err, feature)
	}

	// A full SHA passes through without any remote call: the repo does not even exist.
	full := strings.ToUpper(main)
	got, err = Resolve(ctx, "", filepath.Join(t.TempDir(), "nowhere.git"), full)
	if err != nil || got != main {
		t.Errorf("Resolve(full sha, no repo) = %q, %v; want %q", got, err, main)
	}

	for _, tc := range []struct {
		repo, rev, wantErr string
	}{
		{u.bare, main[:10], "abbreviated commit"},
		{u.bare, "nope", `resolve "nope"`},
		{u.bare, "-nope", "must not start with '-'"},
		{u.bare, "--upload-pack=touch /tmp/x", "must not start with '-'"},
		{"-repo", "main", "must not start with '-'"},
		{u.bare, "ma*", "not a valid branch or tag name"},
		{filepath.Join(t.TempDir(), "missing.git"), "main", "missing.git"},
	} {
		got, err := Resolve(ctx, "", tc.repo, tc.rev)
		if err == nil {
			t.Errorf("Resolve(%q, %q) = %q, want an error", tc.repo, tc.rev, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "checkout: ") {
			t.Errorf("Resolve(%q, %q) error %q; want it to contain %q", tc.repo, tc.rev, err, tc.wantErr)
		}
	}
	_, err = Resolve(ctx, "", u.bare, "nope")
	if err == nil || !strings.Contains(err.Error(), "no such branch or tag") {
		t.Errorf("unknown branch: %v", err)
	}
}

func TestCheckoutAtCommit(t *testing.T) {
	t.Parallel()
	u, main, feature := newUpstream(t)
	ctx := ctxT(t)
	m := &Mirrors{Dir: filepath.Join(t.TempDir(), "git")}
	repo := "file://" + u.bare

	// Detached at main.
	dst := filepath.Join(t.TempDir(), "ws1")
	if err := m.Checkout(ctx, repo, main, "", dst); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dst, "rev-parse", "HEAD"); got != main {
		t.Errorf("HEAD = %s, want %s", got, main)
	}
	if got := git(t, dst, "rev-parse", "--abbrev-ref", "HEAD"); got != "HEAD" {
		t.Errorf("detached checkout: abbrev-ref HEAD = %q", got)
	}
	if got := git(t, dst, "remote", "get-url", "origin"); got != repo {
		t.Errorf("origin = %q, want %q", got, repo)
	}
	for _, f := range []string{"README", "src/a.txt", "src/b.txt"} {
		if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
			t.Errorf("main checkout lacks %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "feature.txt")); err == nil {
		t.Error("main checkout has feature.txt")
	}
	if st := git(t, dst, "status", "--porcelain"); st != "" {
		t.Errorf("workspace not clean: %q", st)
	}
	// No objects copied: they come from the mirror.
	alt, err := os.ReadFile(filepath.Join(dst, ".git", "objects", "info", "alternates"))
	if err != nil || strings.TrimSpace(string(alt)) != filepath.Join(m.MirrorPath(repo), "objects") {
		t.Errorf("alternates = %q, %v; want the mirror's objects", alt, err)
	}
	// Readable by others (a container's user borrows them; the data
	// directory keeps the host's users out).
	if st, err := os.Stat(m.MirrorPath(repo)); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o755 {
		t.Errorf("the mirror's mode is %v, want 0755", st.Mode().Perm())
	}

	// On a branch, into an existing empty directory, with an uppercase sha.
	dst2 := t.TempDir()
	if err := m.Checkout(ctx, repo, strings.ToUpper(feature), "feature", dst2); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dst2, "rev-parse", "HEAD"); got != feature {
		t.Errorf("HEAD = %s, want %s", got, feature)
	}
	if got := git(t, dst2, "rev-parse", "--abbrev-ref", "HEAD"); got != "feature" {
		t.Errorf("abbrev-ref HEAD = %q, want feature", got)
	}
	if b, err := os.ReadFile(filepath.Join(dst2, "feature.txt")); err != nil || string(b) != "f1\n" {
		t.Errorf("feature.txt = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst2, "src/b.txt")); err == nil {
		t.Error("feature checkout has main's src/b.txt")
	}

	// A branch name that differs from where the commit lives upstream (a PR
	// built at its merge base, say) is still just a local name.
	dst3 := filepath.Join(t.TempDir(), "ws3")
	if err := m.Checkout(ctx, repo, main, "pr/42", dst3); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dst3, "rev-parse", "--abbrev-ref", "HEAD"); got != "pr/42" {
		t.Errorf("abbrev-ref HEAD = %q, want pr/42", got)
	}
	if n := m.RemoteCalls(); n != 1 {
		t.Errorf("RemoteCalls = %d, want 1", n)
	}
}

func TestRemoteTouchedOncePerNewCommit(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	ctx := ctxT(t)
	m := &Mirrors{Dir: t.TempDir()}
	tmp := t.TempDir()
	n := 0
	checkout := func(sha string) string {
		t.Helper()
		n++
		dst := filepath.Join(tmp, fmt.Sprint("ws", n))
		if err := m.Checkout(ctx, u.bare, sha, "main", dst); err != nil {
			t.Fatal(err)
		}
		if got := git(t, dst, "rev-parse", "HEAD"); got != sha {
			t.Fatalf("HEAD = %s, want %s", got, sha)
		}
		return dst
	}
	for i := 0; i < 5; i++ {
		checkout(main)
	}
	if got := m.RemoteCalls(); got != 1 {
		t.Fatalf("5 checkouts of one sha: RemoteCalls = %d, want 1 (the clone)", got)
	}
	next := u.pushNew("next.txt")
	checkout(next)
	if got := m.RemoteCalls(); got != 2 {
		t.Fatalf("after a new commit: RemoteCalls = %d, want 2 (clone + fetch)", got)
	}
	checkout(next)
	checkout(main)
	if got := m.RemoteCalls(); got != 2 {
		t.Fatalf("old and known shas again: RemoteCalls = %d, want still 2", got)
	}
	// A second Mirrors on the same Dir (another process, or a restarted node)
	// reuses the mirror.
	m2 := &Mirrors{Dir: m.Dir}
	if err := m2.Checkout(ctx, u.bare, next, "", filepath.Join(tmp, "other")); err != nil {
		t.Fatal(err)
	}
	if got := m2.RemoteCalls(); got != 0 {
		t.Errorf("restarted node with warm mirror: RemoteCalls = %d, want 0", got)
	}
}

func TestConcurrentCheckouts(t *testing.T) {
	t.Parallel()
	u, old, _ := newUpstream(t)
	ctx := ctxT(t)
	m := &Mirrors{Dir: t.TempDir()}
	tmp := t.TempDir()
	if err := m.Checkout(ctx, u.bare, old, "", filepath.Join(tmp, "warm")); err != nil {
		t.Fatal(err)
	}
	next := u.pushNew("next.txt")

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sha, branch := old, "main"
			if i%2 == 1 {
				sha, branch = next, "next"
			}
			dst := filepath.Join(tmp, fmt.Sprint("ws", i))
			if err := m.Checkout(ctx, u.bare, sha, branch, dst); err != nil {
				errs[i] = err
				return
			}
			out, err := exec.Command("git", "-C", dst, "rev-parse", "HEAD", "--abbrev-ref", "HEAD").Output()
			if err != nil {
				errs[i] = err
			} else if got, want := string(out), sha+"\n"+branch+"\n"; got != want {
				errs[i] = fmt.Errorf("rev-parse = %q, want %q", got, want)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("checkout %d: %v", i, err)
		}
	}
	if got := m.RemoteCalls(); got != 2 {
		t.Errorf("RemoteCalls = %d, want 2 (the clone, then one fetch for 4 checkouts of the new sha)", got)
	}
}

func TestConcurrentColdCheckoutsAcrossMirrors(t *testing.T) {
	// Two Mirrors on one Dir stand for two node processes: the flock, not the
	// in-process semaphore, must keep them from cloning over each other.
	t.Parallel()
	u, main, feature := newUpstream(t)
	ctx := ctxT(t)
	dir, tmp := t.TempDir(), t.TempDir()
	ms := []*Mirrors{{Dir: dir}, {Dir: dir}}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sha := []string{main, feature}[i%2]
			errs[i] = ms[i%2].Checkout(ctx, u.bare, sha, "", filepath.Join(tmp, fmt.Sprint("ws", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("checkout %d: %v", i, err)
		}
	}
	if got := ms[0].RemoteCalls() + ms[1].RemoteCalls(); got != 1 {
		t.Errorf("RemoteCalls = %d, want 1 clone in all", got)
	}
	assertDirHolds(t, dir, Key(u.bare)+".git", Key(u.bare)+".lock")
}

func TestWorkspaceSurvivesFetch(t *testing.T) {
	t.Parallel()
	u, a, _ := newUpstream(t)
	ctx := ctxT(t)
	m := &Mirrors{Dir: t.TempDir()}
	tmp := t.TempDir()
	wsA := filepath.Join(tmp, "a")
	if err := m.Checkout(ctx, u.bare, a, "main", wsA); err != nil {
		t.Fatal(err)
	}
	// Upstream rewrites main so that A's child is gone from every ref, and
	// adds B: the fetch for B prunes refs in the mirror.
	git(t, u.work, "reset", "-q", "--hard", "HEAD~1")
	b := u.commit("b.txt", "b\n")
	git(t, u.work, "push", "-q", "-f", "origin", "main")
	git(t, u.work, "push", "-q", "origin", "--delete", "feature")
	if err := m.Checkout(ctx, u.bare, b, "main", filepath.Join(tmp, "b")); err != nil {
		t.Fatal(err)
	}
	if got := m.RemoteCalls(); got != 2 {
		t.Errorf("RemoteCalls = %d, want 2", got)
	}
	if log := git(t, wsA, "log", "--format=%H"); !strings.HasPrefix(log, a+"\n") {
		t.Errorf("workspace A's log after the fetch = %q", log)
	}
	git(t, wsA, "fsck", "--no-dangling", "--connectivity-only")
	// The force-pushed-away commit is still in the mirror: a retry of A's task works
	// without the remote.
	if err := m.Checkout(ctx, u.bare, a, "main", filepath.Join(tmp, "a2")); err != nil {
		t.Fatal(err)
	}
	if got := m.RemoteCalls(); got != 2 {
		t.Errorf("RemoteCalls = %d, want still 2", got)
	}
	// And the mirror is set up never to collect it.
	if got := git(t, m.MirrorPath(u.bare), "config", "gc.auto"); got != "0" {
		t.Errorf("mirror gc.auto = %q, want 0", got)
	}
}

func TestBadInputs(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	m := &Mirrors{Dir: dir}
	tmp := t.TempDir()

	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644)
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o644)
	missing := filepath.Join(t.TempDir(), "does-not-exist.git")

	for _, tc := range []struct {
		name, repo, sha, branch, dst, want string
	}{
		{"short sha", u.bare, main[:12], "", filepath.Join(tmp, "a"), "not a full 40-hex sha"},
		{"non-hex sha", u.bare, strings.Repeat("g", 40), "", filepath.Join(tmp, "a"), "not a full 40-hex sha"},
		{"option sha", u.bare, "--upload-pack=x", "", filepath.Join(tmp, "a"), "not a full 40-hex sha"},
		{"dst not empty", u.bare, main, "", nonEmpty, "is not empty"},
		{"dst a file", u.bare, main, "", file, "not a directory"},
		{"option repo", "--upload-pack=touch x", main, "", filepath.Join(tmp, "a"), "must not start with '-'"},
		{"option branch", u.bare, main, "-f", filepath.Join(tmp, "a"), "not a valid branch name"},
		{"bad branch", u.bare, main, "a..b", filepath.Join(tmp, "a"), "not a valid branch name"},
		{"no repo", missing, main, "", filepath.Join(tmp, "a"), "does-not-exist.git"},
		{"unknown sha", u.bare, strings.Repeat("0", 40), "", filepath.Join(tmp, "a"), "commit not found"},
	} {
		err := m.Checkout(ctx, tc.repo, tc.sha, tc.branch, tc.dst)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "checkout: ") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, tc.sha) {
			t.Errorf("%s: error %q; want prefix \"checkout: \", the sha and %q", tc.name, msg, tc.want)
		}
		if tc.name == "no repo" && (!strings.Contains(msg, "does not exist") || !strings.Contains(msg, "fatal:")) {
			t.Errorf("%s: error %q lacks git's stderr", tc.name, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "a")); err == nil {
		t.Error("a failed checkout left its destination behind")
	}
	if _, err := os.Stat(filepath.Join(nonEmpty, "x")); err != nil {
		t.Error("refused checkout touched the non-empty destination")
	}
	// The missing repo left only its lock file: no mirror, no temp dir. The
	// good repo's mirror exists (the unknown-sha case made it).
	assertDirHolds(t, dir, Key(missing)+".lock", Key(u.bare)+".git", Key(u.bare)+".lock")

	// A cancelled context stops the work and leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	dst := filepath.Join(tmp, "cancelled")
	other := &Mirrors{Dir: t.TempDir()}
	if err := other.Checkout(cctx, u.bare, main, "", dst); err == nil {
		t.Error("cancelled checkout succeeded")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("cancelled checkout left its destination behind")
	}
	if _, err := os.Stat(other.MirrorPath(u.bare)); err == nil {
		t.Error("cancelled checkout left a mirror behind")
	}
	if err := (&Mirrors{}).Checkout(ctx, u.bare, main, "", dst); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("no Dir: %v", err)
	}
}

func TestCrashLeftoversAreCleared(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	key := Key(u.bare)
	half := filepath.Join(dir, key+".tmp-123")
	if err := os.MkdirAll(filepath.Join(half, "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Mirrors{Dir: dir}
	if err := m.Checkout(ctx, u.bare, main, "", filepath.Join(t.TempDir(), "ws")); err != nil {
		t.Fatal(err)
	}
	assertDirHolds(t, dir, key+".git", key+".lock")
}

func TestCheckoutFailureLeavesEmptyDst(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	ctx := ctxT(t)
	m := &Mirrors{Dir: t.TempDir()}
	dst := t.TempDir() // exists, empty
	// Make the last step fail, after the mirror and the clone succeeded, with
	// a wrapper around git.
	wrapper := filepath.Join(t.TempDir(), "git")
	script := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = checkout ] && { echo 'fatal: injected failure' >&2; exit 1; }; done\nexec git \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m.Git = wrapper
	err := m.Checkout(ctx, u.bare, main, "", dst)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	ents, rerr := os.ReadDir(dst)
	if rerr != nil || len(ents) != 0 {
		t.Errorf("after a failed checkout dst holds %v (%v), want it empty", ents, rerr)
	}
	// The mirror is fine: a retry with the real git works without the remote.
	m2 := &Mirrors{Dir: m.Dir}
	if err := m2.Checkout(ctx, u.bare, main, "", dst); err != nil {
		t.Fatal(err)
	}
	if m2.RemoteCalls() != 0 {
		t.Errorf("retry contacted the remote")
	}
}

func assertDirHolds(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	wantSet := map[string]bool{}
	for _, w := range want {
		wantSet[w] = true
	}
	if len(got) != len(wantSet) {
		t.Errorf("%s holds %v, want exactly %v", dir, got, want)
		return
	}
	for _, g := range got {
		if !wantSet[g] {
			t.Errorf("%s holds %v, want exactly %v", dir, got, want)
			return
		}
	}
}

// TestCheckoutStandalone: a standalone workspace has its own objects (no
// alternates: its task need not reach the mirror), hard links to the
// mirror's read-only object files when on one file system, and git works in
// it after the mirror is gone.
func TestCheckoutStandalone(t *testing.T) {
	t.Parallel()
	u, main, _ := newUpstream(t)
	ctx := ctxT(t)
	root := t.TempDir()
	m := &Mirrors{Dir: filepath.Join(root, "git")}
	repo := "file://" + u.bare
	dst := filepath.Join(root, "ws")
	if err := m.CheckoutStandalone(ctx, repo, main, "main", dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".git", "objects", "info", "alternates")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("alternates: got %v, want none", err)
	}
	linked := 0
	filepath.WalkDir(filepath.Join(dst, ".git", "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Nlink > 1 {
			linked++
			if fi.Mode().Perm()&0o222 != 0 {
				t.Errorf("%s is shared with the mirror and writable (%v)", p, fi.Mode())
			}
		}
		return nil
	})
	if linked == 0 {
		t.Error("no object file is hard-linked to the mirror's")
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dst, "rev-parse", "HEAD"); got != main {
		t.Errorf("HEAD = %s, want %s", got, main)
	}
	if st := git(t, dst, "status", "--porcelain"); st != "" {
		t.Errorf("workspace not clean: %q", st)
	}
	git(t, dst, "fsck", "--no-progress")
}
