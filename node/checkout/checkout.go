package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Mirrors keeps one bare mirror per repository under Dir and makes task
// workspaces from them. The zero value with Dir set is ready to use; a Mirrors
// must not be copied after first use. All methods are safe for concurrent use.
type Mirrors struct {
	Dir string   // e.g. DATA_DIR/git; created on first use
	Git string   // git binary; "" = "git"
	Env []string // extra env for git (e.g. GIT_SSH_COMMAND); the process env is inherited otherwise

	remoteCalls atomic.Int64 // clones and fetches started against a remote

	mu    sync.Mutex
	locks map[string]chan struct{} // per-repo key: a one-slot semaphore
}

// RemoteCalls reports how many times the remote was contacted (a mirror clone
// or a fetch), counting attempts that failed too.
func (m *Mirrors) RemoteCalls() int64 { return m.remoteCalls.Load() }

// Key is the name of repo's mirror and lock file under Mirrors.Dir: the first
// 16 hex digits of SHA-256 of the URL exactly as given.
func Key(repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return hex.EncodeToString(sum[:])[:16]
}

// MirrorPath is where the bare mirror of repo lives (whether or not it exists
// yet). Workspaces made by Checkout read their objects from
// MirrorPath(repo)/objects through git's alternates, so an executor that runs a
// task in a container must make that directory visible at the same path
// (read-only is enough) for git commands in the workspace to work.
func (m *Mirrors) MirrorPath(repo string) string {
	return filepath.Join(m.dir(), Key(repo)+".git")
}

func (m *Mirrors) dir() string {
	if abs, err := filepath.Abs(m.Dir); err == nil {
		return abs
	}
	return m.Dir
}

// Resolve turns rev (a branch, tag, or a full commit SHA) of repo into a full
// commit SHA, asking the remote with `git ls-remote` unless rev is a full
// 40-hex SHA (returned lower-cased, without contacting anyone, and without
// checking that the commit exists). A name is looked up, in this order, as
// refs/heads/REV, refs/tags/REV (an annotated tag gives the commit it points
// to); a rev starting with "refs/" is taken as a full ref name and "" means
// the remote's HEAD. An abbreviated SHA is refused: ls-remote only lists refs,
// so the remote cannot expand one. git is the git binary ("" = "git").
func Resolve(ctx context.Context, git, repo, rev string) (sha string, err error) {
	if err := checkRepo(repo); err != nil {
		return "", fmt.Errorf("checkout: resolve %q: %w", rev, err)
	}
	if strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("checkout: resolve %q in %s: a rev must not start with '-'", rev, redact(repo))
	}
	if isFullSHA(rev) {
		return strings.ToLower(rev), nil
	}
	if rev == "" {
		rev = "HEAD"
	}
	if rev != "HEAD" && !validRefName(rev) {
		return "", fmt.Errorf("checkout: resolve %q in %s: not a valid branch or tag name", rev, redact(repo))
	}
	var want []string // candidate ref names, best first
	switch {
	case rev == "HEAD":
		want = []string{"HEAD"}
	case strings.HasPrefix(rev, "refs/"):
		want = []string{rev + "^{}", rev}
	default:
		want = []string{"refs/heads/" + rev, "refs/tags/" + rev + "^{}", "refs/tags/" + rev}
	}
	patterns := []string{rev}
	if rev != "HEAD" {
		patterns = append(patterns, rev+"^{}")
	}
	r := runner{bin: git}
	out, err := r.run(ctx, "", append([]string{"ls-remote", "--", repo}, patterns...)...)
	if err != nil {
		return "", fmt.Errorf("checkout: resolve %q in %s: %w", rev, redact(repo), err)
	}
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		hash, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && isFullSHA(hash) {
			refs[name] = strings.ToLower(hash)
		}
	}
	for _, name := range want {
		if h, ok := refs[name]; ok {
			return h, nil
		}
	}
	if isHex(rev) && len(rev) >= 4 {
		return "", fmt.Errorf("checkout: resolve %q in %s: no branch or tag of that name, and an abbreviated commit cannot be resolved remotely: give the full 40-hex sha", rev, redact(repo))
	}
	return "", fmt.Errorf("checkout: resolve %q in %s: no such branch or tag", rev, redact(repo))
}

// Checkout makes dst (which must not exist or be an empty directory) a working
// tree of repo at commit sha, with origin set to repo and, if branch != "", a
// local branch of that name checked out at sha (otherwise HEAD is detached).
// See the package documentation for what it costs and what it shares.
func (m *Mirrors) Checkout(ctx context.Context, repo, sha, branch, dst string) (err error) {
	return m.checkout(ctx, repo, sha, branch, dst, true)
}

// CheckoutStandalone is Checkout for a workspace that must not borrow from
// the mirror (its task cannot read the node's data directory): `git clone
// --local` hard-links the mirror's object files into the workspace (copies
// them when it is on another file system) instead of pointing to them
// through alternates. Git makes object files read-only (0444), so the
// workspace can read but never change the mirror's objects.
func (m *Mirrors) CheckoutStandalone(ctx context.Context, repo, sha, branch, dst string) error {
	return m.checkout(ctx, repo, sha, branch, dst, false)
}

func (m *Mirrors) checkout(ctx context.Context, repo, sha, branch, dst string, shared bool) (err error) {
	fail := func(what string, err error) error {
		return fmt.Errorf("checkout: %s at %s: %s: %w", redact(repo), sha, what, err)
	}
	if err := checkRepo(repo); err != nil {
		return fmt.Errorf("checkout: %s at %s: %w", redact(repo), sha, err)
	}
	if !isFullSHA(sha) {
		return fail("bad commit", errors.New("not a full 40-hex sha (use Resolve first)"))
	}
	sha = strings.ToLower(sha)
	if branch != "" && !validRefName(branch) {
		return fail("bad branch", fmt.Errorf("%q is not a valid branch name", branch))
	}
	if m.Dir == "" {
		return fail("mirrors", errors.New("Mirrors.Dir is not set"))
	}
	if dst == "" {
		return fail("workspace", errors.New("no destination directory"))
	}
	dstExisted, err := checkEmpty(dst)
	if err != nil {
		return fail("workspace", err)
	}

	mirror, err := m.ensure(ctx, repo, sha)
	if err != nil {
		return fail("mirror", err)
	}

	// From here on dst is ours: on failure leave it as we found it.
	defer func() {
		if err == nil {
			return
		}
		if !dstExisted {
			os.RemoveAll(dst)
			return
		}
		if ents, rerr := os.ReadDir(dst); rerr == nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dst, e.Name()))
			}
		}
	}()
	r := m.runner()
	borrow := "--shared"
	if !shared {
		borrow = "--local"
	}
	if _, err := r.run(ctx, "", "clone", borrow, "--no-checkout", "--quiet", "--", mirror, dst); err != nil {
		return fail("clone workspace from mirror", err)
	}
	if _, err := r.run(ctx, dst, "remote", "set-url", "origin", "--", repo); err != nil {
		return fail("set origin", err)
	}
	// checkout.workers=0: write the files with one worker per CPU.
	args := []string{"-c", "checkout.workers=0", "checkout", "--quiet", "--detach", sha, "--"}
	if branch != "" {
		args = []string{"-c", "checkout.workers=0", "checkout", "--quiet", "-B", branch, sha, "--"}
	}
	if _, err := r.run(ctx, dst, args...); err != nil {
		return fail("check out", err)
	}
	return nil
}

// ensure returns the path of repo's mirror once it holds commit sha, creating
// or fetching it as needed.
func (m *Mirrors) ensure(ctx context.Context, repo, sha string) (string, error) {
	dir := m.dir()
	key := Key(repo)
	path := filepath.Join(dir, key+".git")
	r := m.runner()

	// Fast path, no lock: the mirror is only ever renamed into place whole and
	// fetches only add objects, so reading it concurrently is safe.
	if exists(path) {
		if ok, err := hasCommit(ctx, r, path, sha); ok || err != nil {
			return path, err
		}
	}

	unlock, err := m.lock(ctx, dir, key)
	if err != nil {
		return "", err
	}
	defer unlock()

	if exists(path) {
		// Someone else may have fetched it while we waited.
		if ok, err := hasCommit(ctx, r, path, sha); ok || err != nil {
			return path, err
		}
		m.remoteCalls.Add(1)
		if _, err := r.run(ctx, "", "-c", "gc.auto=0", "-c", "maintenance.auto=false",
			"-C", path, "fetch", "--quiet", "--prune", "--no-auto-maintenance", "--no-write-fetch-head", "origin"); err != nil {
			return "", fmt.Errorf("fetch: %w", err)
		}
	} else {
		// Leftovers of a creation that crashed: only we (holding the lock)
		// could be writing them.
		if old, _ := filepath.Glob(filepath.Join(dir, key+".tmp-*")); len(old) > 0 {
			for _, o := range old {
				os.RemoveAll(o)
			}
		}
		tmp, err := os.MkdirTemp(dir, key+".tmp-")
		if err != nil {
			return "", err
		}
		// MkdirTemp makes it 0700, but a Docker task, which borrows its
		// objects through the mirror mounted at the same path, may run as
		// another user (nobody for a root node) and must read them; the
		// data directory above keeps everyone else out on the host.
		if err := os.Chmod(tmp, 0o755); err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
		m.remoteCalls.Add(1)
		_, err = r.run(ctx, "", "clone", "--mirror", "--quiet",
			"--config", "gc.auto=0", "--config", "maintenance.auto=false",
			"--config", "gc.pruneExpire=never", "--config", "gc.reflogExpireUnreachable=never",
			"--", repo, tmp)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("clone mirror: %w", err)
		}
	}
	ok, err := hasCommit(ctx, r, path, sha)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("commit not found in the repository (not reachable from any of its refs)")
	}
	return path, nil
}

// hasCommit reports whether the mirror holds sha as a commit. A sha that names
// another kind of object is an error.
func hasCommit(ctx context.Context, r runner, mirror, sha string) (bool, error) {
	out, err := r.run(ctx, "", "-C", mirror, "cat-file", "-t", sha)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, nil // missing (git gives no better signal)
	}
	if typ := strings.TrimSpace(out); typ != "commit" {
		return false, fmt.Errorf("%s is a %s, not a commit", sha, typ)
	}
	return true, nil
}

// lock takes the per-repo lock: first within this process (a semaphore, so a
// waiter can give up when ctx ends), then across processes (flock).
func (m *Mirrors) lock(ctx context.Context, dir, key string) (unlock func(), err error) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]chan struct{}{}
	}
	sem, ok := m.locks[key]
	if !ok {
		sem = make(chan struct{}, 1)
		m.locks[key] = sem
	}
	m.mu.Unlock()

	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		<-sem
		return nil, err
	}
	release, err := flock(ctx, filepath.Join(dir, key+".lock"))
	if err != nil {
		<-sem
		return nil, err
	}
	return func() { release(); <-sem }, nil
}

func (m *Mirrors) runner() runner { return runner{bin: m.Git, env: m.Env} }

// checkEmpty reports whether dst exists; it must be absent or an empty directory.
func checkEmpty(dst string) (existed bool, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return true, fmt.Errorf("%s exists and is not a directory", dst)
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		return true, err
	}
	if len(ents) > 0 {
		return true, fmt.Errorf("%s is not empty", dst)
	}
	return true, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func checkRepo(repo string) error {
	switch {
	case repo == "":
		return errors.New("no repository")
	case strings.HasPrefix(repo, "-"):
		return fmt.Errorf("repository %q must not start with '-'", repo)
	case strings.ContainsAny(repo, "\x00\n\r"):
		return fmt.Errorf("repository %q contains a control character", repo)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func isFullSHA(s string) bool { return len(s) == 40 && isHex(s) }

// validRefName applies git check-ref-format's rules to a branch or tag name
// (or a full "refs/..." name), and refuses a leading '-'.
func validRefName(name string) bool {
	if name == "" || name == "@" || strings.HasPrefix(name, "-") ||
		strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") ||
		strings.Contains(name, "..") || strings.Contains(name, "//") || strings.Contains(name, "@{") {
		return false
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}

// redact hides a password in a URL for error messages.
func redact(repo string) string {
	if u, err := url.Parse(repo); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return repo
}
