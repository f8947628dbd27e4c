package topic

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ourci/ourci/raftfsm"
)

// A spawn's --env reaches the task's process, an agent script (a rig's
// gate) or a container. Variables that change how a loader, a shell or a
// search path behaves would run the spawner's code before the script's
// first line (LD_PRELOAD, BASH_ENV, BASH_FUNC_x%%, PATH, ...), and OurCI's
// own variables would let a task pass for another: both are refused (400
// listing them) unless the topic's node allows a name with
// --topic-env-allow TOPIC=NAME,...

// deniedEnv are the names (and prefixes, ending in '*') refused by default.
var deniedEnv = []string{
	"LD_*", "DYLD_*", "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "MALLOC_*", "GLIBC_TUNABLES",
	"BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH",
	"PATH", "HOME", "SHELL", "TMPDIR",
	"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
	"GIT_*", "SSH_*",
	"OURCI_*", "BLOB_URL", "BUILD_JOB", "BRANCH", "CI_BRANCH",
}

// EnvDenied reports whether name is refused unless allowed.
func EnvDenied(name string) bool {
	if strings.Contains(name, "%") || strings.Contains(name, "(") {
		return true // exported shell functions (BASH_FUNC_f%%, old "f()")
	}
	for _, d := range deniedEnv {
		if p, ok := strings.CutSuffix(d, "*"); ok && strings.HasPrefix(name, p) || d == name {
			return true
		}
	}
	return false
}

// CheckEnv refuses the denied names of env that allow does not list.
func CheckEnv(env []string, allow []string) error {
	var bad []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if EnvDenied(k) && !slices.Contains(allow, k) && !slices.Contains(bad, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("spawn: --env may not set %s: loader, shell-startup, search-path and OurCI variables run code before the task's first line or pass for another task (a node can allow a name with --topic-env-allow TOPIC=NAME)", strings.Join(bad, ", "))
}

// DropDeniedEnv removes from the attempt's own copy of the task the
// --env entries this node does not allow (the leader checked against what
// some subscriber allows; this node may allow less), and returns their
// names.
func DropDeniedEnv(t *raftfsm.Task, allow []string) []string {
	var dropped []string
	kept := t.Env[:0:0]
	for _, kv := range t.Env {
		k, _, _ := strings.Cut(kv, "=")
		if EnvDenied(k) && !slices.Contains(allow, k) {
			dropped = append(dropped, k)
			continue
		}
		kept = append(kept, kv)
	}
	if len(dropped) > 0 {
		t.Env = kept
	}
	return dropped
}
