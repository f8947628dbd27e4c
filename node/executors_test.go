package node

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/executor"
)

// TestTaskUserConfig: --task-user refuses root and unknown users, and a
// work directory the user cannot reach (inside the 0700 data directory);
// by default it puts the workspaces under TMPDIR/ourci-work, and makes the
// data directory 0700 whatever its mode was.
func TestTaskUserConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: --task-user needs root")
	}
	tmp := t.TempDir()
	for _, d := range []string{tmp, filepath.Dir(tmp)} { // t.TempDir's are 0700: a TMPDIR must be reachable
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TMPDIR", tmp)
	base := Config{Name: "n1", Secret: NewSecret()}
	for _, tt := range []struct {
		name, user, workDir, err string
	}{
		{"root", "root", "", "must not be root"},
		{"unknown", "ourci-no-such-user", "", "--task-user"},
		{"inside the data dir", "nobody", "DATA/work", "cannot reach the workspaces"},
		{"default", "nobody", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.DataDir = filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
				t.Fatal(err)
			}
			c.TaskUser, c.WorkDir = tt.user, strings.Replace(tt.workDir, "DATA", c.DataDir, 1)
			c, err := c.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			n := &Node{cfg: c, log: slog.Default()}
			err = n.setupExecutors()
			t.Cleanup(n.closeExecutors)
			if tt.err != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an ErrConfig with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(tmp, "ourci-work", nodeKey("n1", c.DataDir)); c.WorkDir != want {
				t.Errorf("work dir %s, want %s", c.WorkDir, want)
			}
			if fi, err := os.Stat(c.WorkDir); err != nil || fi.Mode().Perm() != 0o711 {
				t.Errorf("work dir mode %v (%v), want 0711", fi.Mode(), err)
			}
			if fi, err := os.Stat(c.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("data dir mode %v (%v), want 0700", fi.Mode(), err)
			}
			if u := n.exec.host.User; u == nil || u.Name != "nobody" {
				t.Errorf("host executor user %v, want nobody", u)
			}
		})
	}
}

func TestTopicUserConfig(t *testing.T) {
	for _, tt := range []struct {
		user string
		ok   bool
	}{{"", true}, {"1000:1000", true}, {"0:0", true}, {"nobody", false}, {"1000", false}, {"a:b", false}, {"-1:1", false}} {
		err := validateTopics([]Topic{{Name: "d", Executor: executor.KindDocker, User: tt.user}})
		if (err == nil) != tt.ok {
			t.Errorf("topic user %q: got %v, want ok %v", tt.user, err, tt.ok)
		}
	}
	if err := validateTopics([]Topic{{Name: "h", Pids: 10}}); !errors.Is(err, ErrConfig) {
		t.Errorf("pids on a host topic: got %v, want ErrConfig", err)
	}
}

func TestTopicExecutorConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		topic Topic
		kind  string
		ok    bool
	}{
		{"host by default", Topic{Name: "h"}, KindHost, true},
		{"agent by its script", Topic{Name: "a", Agent: "/bin/true"}, KindAgent, true},
		{"agent named", Topic{Name: "a", Executor: executor.KindAgent, Agent: "/bin/true"}, KindAgent, true},
		{"agent without a script", Topic{Name: "a", Executor: executor.KindAgent}, KindAgent, false},
		{"docker", Topic{Name: "d", Executor: executor.KindDocker}, KindDocker, true},
		{"docker with a script", Topic{Name: "d", Executor: executor.KindDocker, Agent: "/bin/true"}, KindDocker, false},
		{"an unknown executor", Topic{Name: "p", Executor: "podman"}, "podman", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.topic.Kind(); got != tt.kind {
				t.Errorf("Kind: got %q, want %q", got, tt.kind)
			}
			err := validateTopics([]Topic{tt.topic})
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("validateTopics: got %v, want ok %v (else ErrConfig)", err, tt.ok)
			}
		})
	}
}
