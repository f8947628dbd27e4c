package runner

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ourci/ourci/raftfsm"
)

// env builds a task's whole environment. Nothing of the node's own
// environment leaks in but PATH, HOME, USER, LANG, TZ and TMPDIR; the
// cluster secret never does.
func (r *Runner) env(t *raftfsm.Task, job raftfsm.Job, workdir string) []string {
	cfg := r.cfg
	env := map[string]string{}
	for _, k := range []string{"HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL", "TERM"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	if cfg.Binary != "" {
		path = filepath.Dir(cfg.Binary) + string(os.PathListSeparator) + path
	}
	env["PATH"] = path
	// The task's own --env first: the names OurCI sets below win over it.
	for _, kv := range t.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set("OURCI_JOB", t.Job)
	set("BUILD_JOB", t.Job)
	set("OURCI_TASK", t.ID)
	set("OURCI_PARENT", t.Parent)
	set("OURCI_ATTEMPT", strconv.Itoa(t.Attempt))
	set("OURCI_TOPIC", t.Topic)
	set("OURCI_IMAGE", t.Image)
	api := cfg.Host.TaskAPI(t.Topic) // a container on a bridge network reaches the node on its gateway
	set("OURCI_NODE", api)
	set("OURCI_NODE_NAME", cfg.Name)
	set("OURCI_TOKEN", cfg.Secret.TaskToken(t.ID, t.Attempt))
	// curl ${BLOB_URL}/NAME_OR_HASH: the path carries a capability that
	// reads this job's blobs and nothing else, not the task's token.
	set("BLOB_URL", api+"/v1/blob/"+cfg.Secret.BlobToken(t.Job, t.ID, t.Attempt))
	set("OURCI_WORKSPACE", workdir)
	src := job.Source
	set("OURCI_REPO", src.Repo)
	set("OURCI_SHA", src.SHA)
	set("OURCI_BRANCH", src.Branch)
	set("BRANCH", src.Branch)
	set("CI_BRANCH", src.Branch)
	if src.PR > 0 {
		set("OURCI_PR", strconv.Itoa(src.PR))
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
