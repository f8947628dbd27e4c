// Package checkout gives tasks fast source checkouts from a per-node mirror:
// the OurCI form of the seed's trampoline
//
//	git clone --reference /data/srcfs/dev -b "${BRANCH}" git@github.com:cesanta/dev.git "${TMPCLONE}"
//
// The leader turns a job's (repository, branch or tag) into one commit with
// [Resolve] before it opens the job, so every task of the job builds the same
// commit. On the node that runs a task, [Mirrors.Checkout] makes the task's
// workspace at that commit from a bare mirror the node keeps per repository.
// It uses the real git binary (os/exec) and nothing else.
//
// # Layout on disk
//
//	Mirrors.Dir/                 (e.g. DATA_DIR/git)
//	  <key>.git/                 `git clone --mirror` of the repository (bare, refs/* of the remote)
//	  <key>.lock                 flock(2) target serialising creation and fetches of that mirror
//	  <key>.tmp-XXXX/            a mirror being cloned; renamed to <key>.git when complete
//
// key is the first 16 hex digits of SHA-256 of the repository URL exactly as
// given ([Key]), so two spellings of one URL get two mirrors. Because a mirror
// only appears by rename(2) of a complete clone, a crash never leaves a half
// mirror under its real name; leftover <key>.tmp-* directories are deleted by
// the next creation of that key (under its lock).
//
// A workspace is an ordinary non-bare clone in the task's directory whose
// .git/objects/info/alternates names <key>.git/objects: it has its own HEAD,
// index, refs and config, and borrows every object from the mirror. Its
// origin is the real repository URL (not the mirror), HEAD is the commit
// detached, or a local branch at it when a branch is given (so
// `git rev-parse --abbrev-ref HEAD` prints the branch, as CI scripts expect),
// and refs/remotes/origin/* and tags are those of the mirror when it was made.
// A container that runs a task in such a workspace needs <key>.git mounted at
// the same absolute path ([Mirrors.MirrorPath]; read-only is enough) for git
// commands inside it to work; the checked-out files need nothing.
//
// # What touches the remote, and when
//
//   - Resolve runs `git ls-remote REPO REV REV^{}` once per call, unless REV
//     is already a full 40-hex SHA (returned as is, no network). Names are
//     looked up as refs/heads/REV first, then refs/tags/REV (peeled), like
//     `git clone -b`; "" means the remote's HEAD; "refs/..." is exact.
//     Abbreviated SHAs are refused with an error saying to give the full SHA:
//     ls-remote lists refs only, so no remote can expand one. (A short hex
//     string that is a branch or tag name still resolves as that name.)
//   - Checkout contacts the remote at most once: `git clone --mirror` when the
//     node has no mirror of the repository yet, or `git fetch --prune origin`
//     (all of refs/*, so GitHub's refs/pull/N/head come along) when the mirror
//     lacks the commit. A commit already in the mirror costs no network at
//     all, so a node touches the remote once per new commit, not once per
//     task. [Mirrors.RemoteCalls] counts these contacts.
//   - Making the workspace is local: `git clone --shared --no-checkout MIRROR
//     DST` (refs only, no objects copied), `git remote set-url origin REPO`,
//     `git checkout --detach SHA` or `git checkout -B BRANCH SHA` (with
//     checkout.workers=0: files are written by one worker per CPU). Writing
//     the files is most of its cost. [Mirrors.CheckoutStandalone] clones
//     with --local instead: the workspace gets hard links to the mirror's
//     (read-only) object files, or copies across file systems, and does
//     not need to reach the mirror afterwards (a task running as a user
//     that cannot read the node's data directory).
//
// Every git command runs with the node's environment plus Mirrors.Env, with
// GIT_TERMINAL_PROMPT=0 and GIT_ASKPASS/SSH_ASKPASS empty, stdin on /dev/null
// and in a new session without a controlling terminal, so a missing
// credential fails instead of hanging; and under the caller's context, which
// kills git and every process it started (ssh, index-pack) when a task times
// out or is cancelled. User input never becomes a git option: repository URLs
// and revs starting with '-' are refused, branch names must pass git's ref
// name rules, SHAs must be 40 hex, and URLs and paths follow "--". Errors
// start with "checkout: ", name the repository (password redacted) and the
// commit, and carry the last lines of git's stderr.
//
// # Why clone --shared and not git worktree
//
// `git worktree add` would write into the mirror on every checkout (its
// worktrees/ directory) and leave stale entries behind when a workspace is
// simply deleted; a branch made with `checkout -B` in a worktree would be a
// ref in the mirror itself, which the next mirror fetch (refspec
// +refs/*:refs/*, --prune) would overwrite or delete, and git refuses to have
// one branch checked out in two worktrees, so two tasks of one job could not
// both be on BRANCH. A `clone --shared` workspace writes nothing into the
// mirror and keeps its refs to itself; the mirror does not know it exists, so
// deleting a workspace is just `rm -rf`, any number can be made at once, and
// the mirror can be fetched while they are made and used.
//
// # Concurrency
//
// Creation and fetch of one mirror are serialised per repository by a
// semaphore within the process and by flock(2) on <key>.lock across processes
// (both waits end with the context). The check "is the commit already here?"
// runs first without any lock, and again under the lock, so N tasks that want
// a new commit cause one fetch. Making workspaces takes no lock: it only
// reads the mirror, and git's readers are safe against a concurrent fetch,
// which writes new packs and objects before it moves refs, each by rename.
// Checkouts into different destinations, of one repository or many, may run
// in parallel; two Checkouts into one destination are the caller's bug.
//
// # Safety of the shared object store
//
// A workspace has no objects of its own at first: it reads them from the
// mirror through alternates. Deleting an object from the mirror would corrupt
// every workspace that uses it — which is what `git gc --prune=now` (or a
// repack that drops unreachable objects) would do to, say, a commit that a
// force-push made unreachable while a task is still building it. So mirrors
// are append-only:
//
//   - this package never runs gc, repack or prune on a mirror;
//   - every mirror is created with gc.auto=0, maintenance.auto=false,
//     gc.pruneExpire=never and gc.reflogExpireUnreachable=never, and every
//     fetch also runs with -c gc.auto=0 -c maintenance.auto=false
//     --no-auto-maintenance, so git's automatic gc and maintenance never run
//     there either, and even a manual plain `git gc` would not prune loose
//     objects;
//   - `fetch --prune` deletes refs, never objects.
//
// The price is that a mirror only grows. To reclaim space, delete the whole
// <key>.git directory (holding <key>.lock) at a moment when no workspace made
// from it exists; the next Checkout clones it again. Never run
// `git gc --prune=now` in a mirror while workspaces exist.
//
// Repositories must use SHA-1 object names (40 hex), which is what GitHub and
// every default git install use.
package checkout
