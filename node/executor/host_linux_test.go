package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/nodetest/wait"
)

func TestHostRuns(t *testing.T) {
	t.Setenv("OURCI_LEAK", "leaked") // the node's environment must not reach tasks
	scripts := t.TempDir()
	body := `printf '%s|%s|%s|%s\n' "$1" "$2" "$FOO" "$OURCI_LEAK"; exit 3` + "\n"
	exe := writeScript(t, scripts, "exe.sh", "#!/bin/sh\n"+body, 0o755)
	plain := writeScript(t, scripts, "plain.sh", "#!/bin/sh\n"+body, 0o644)
	bare := writeScript(t, scripts, "bare.sh", body, 0o755) // no "#!": ENOEXEC, run by sh
	bin := t.TempDir()
	writeScript(t, bin, "ourci-hello", "#!/bin/sh\necho hello \"$@\"\n", 0o755)
	work, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := []string{testPath, "FOO=bar"}

	tests := []struct {
		name string
		spec Spec
		code int
		out  string
	}{
		{"shell form", Spec{Args: []string{`echo "$FOO"; exit 3`}}, 3, "bar\n"},
		{"shell form with assignment", Spec{Args: []string{`FOO=1 sh -c 'echo "$FOO"'`}}, 0, "1\n"},
		{"shell form exit 0", Spec{Args: []string{"true"}}, 0, ""},
		{"exec form", Spec{Args: []string{"printf", "%s|%s\n", "a b", "$FOO"}}, 0, "a b|$FOO\n"},
		{"exec form exit 3", Spec{Args: []string{"sh", "-c", "exit 3"}}, 3, ""},
		{"exec form task PATH", Spec{Args: []string{"ourci-hello", "x"}, Env: []string{"PATH=" + bin}}, 0, "hello x\n"},
		{"exec form absolute", Spec{Args: []string{"/bin/echo", "a", "b"}}, 0, "a b\n"},
		{"executable script", Spec{Script: exe, Args: []string{"a b", "c"}}, 3, "a b|c|bar|\n"},
		{"non-executable script", Spec{Script: plain, Args: []string{"a b", "c"}}, 3, "a b|c|bar|\n"},
		{"script without #!", Spec{Script: bare, Args: []string{"a b", "c"}}, 3, "a b|c|bar|\n"},
		{"script without args", Spec{Script: exe}, 3, "||bar|\n"},
		{"parent env not leaked", Spec{Args: []string{`echo "${OURCI_LEAK-unset}"`}}, 0, "unset\n"},
		{"nil env is empty", Spec{Args: []string{"/bin/sh", "-c", `echo "${OURCI_LEAK-unset}"`}, Env: []string{}}, 0, "unset\n"},
		{"dir", Spec{Args: []string{"pwd"}}, 0, work + "\n"},
		{"stderr merged in order", Spec{Args: []string{"echo 1; echo 2 >&2; echo 3"}}, 0, "1\n2\n3\n"},
		{"killed by SIGKILL", Spec{Args: []string{"kill -KILL $$"}}, ExitSIGKILL, ""},
		{"killed by SIGTERM", Spec{Args: []string{"kill -TERM $$"}}, ExitSIGTERM, ""},
		{"killed by SIGUSR1", Spec{Args: []string{"kill -USR1 $$"}}, 128 + 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			if s.Env == nil {
				s.Env = env
			} else if len(s.Env) == 0 {
				s.Env = nil // the "nil env" case
			}
			s.Dir = work
			var out syncBuffer
			s.Output = &out
			p := start(t, context.Background(), s)
			if got := waitCode(t, p); got != tt.code {
				t.Errorf("exit code: got %d, want %d (output %q)", got, tt.code, out.String())
			}
			if got := out.String(); got != tt.out {
				t.Errorf("output: got %q, want %q", got, tt.out)
			}
		})
	}
}

func TestHostStartErrors(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "ourci-hello", "#!/bin/sh\necho hello\n", 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH")) // found by the node, not by the task
	missing := filepath.Join(t.TempDir(), "missing.sh")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		spec    Spec
		want    string // in the message
		wantErr error  // for errors.Is, if set
	}{
		{"no args", context.Background(), Spec{Env: []string{testPath}}, "no command", nil},
		{"missing script", context.Background(), Spec{Script: missing}, missing, fs.ErrNotExist},
		{"script is a directory", context.Background(), Spec{Script: bin}, bin, nil},
		{"not in task PATH", context.Background(), Spec{Args: []string{"ourci-hello", "x"}, Env: []string{testPath}}, "ourci-hello", exec.ErrNotFound},
		{"no PATH in env", context.Background(), Spec{Args: []string{"ls", "/"}}, "ls", exec.ErrNotFound},
		{"missing dir", context.Background(), Spec{Args: []string{"true"}, Dir: missing}, "true", fs.ErrNotExist},
		{"cancelled context", cancelled, Spec{Args: []string{"true"}}, "not started", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Host{}.Start(tt.ctx, tt.spec)
			if err == nil {
				p.Destroy()
				t.Fatalf("Start: got nil error, want one containing %q", tt.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "executor: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("Start: got error %q, want prefix %q and %q in it", msg, "executor: ", tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Start: got error %v, want one wrapping %v", err, tt.wantErr)
			}
		})
	}
}

func TestHostStreamsOutputWhileRunning(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	p := start(t, context.Background(), Spec{Args: []string{"echo ready; sleep 1000"}, Env: []string{testPath}, Output: &out})
	wait.For(t, deadline, "the first line of output", func() (bool, string) { return out.String() == "ready\n", fmt.Sprintf("output %q", out.String()) })
	p.Stop()
	if got := waitCode(t, p); got != ExitSIGTERM {
		t.Errorf("exit code: got %d, want %d", got, ExitSIGTERM)
	}
}

func TestHostContextCancelStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	p := start(t, ctx, Spec{Args: []string{"echo ready; sleep 1000"}, Env: []string{testPath}, Output: &out})
	wait.For(t, deadline, "the task to start", func() (bool, string) { return out.String() == "ready\n", fmt.Sprintf("output %q", out.String()) })
	cancel()
	if got := waitCode(t, p); got != ExitSIGTERM {
		t.Errorf("exit code: got %d, want %d", got, ExitSIGTERM)
	}
}

// Host satisfies the interface callers use, like Fake.
var _ interface {
	Start(context.Context, Spec) (Process, error)
} = Host{}
