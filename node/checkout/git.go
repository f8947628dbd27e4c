package checkout

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// runner runs git with a fixed binary and environment.
type runner struct {
	bin string
	env []string
}

// stderrLines is how many of git's last stderr lines an error carries.
const stderrLines = 4

// run runs git ARGS in dir ("" = the current directory) and returns its
// stdout. The process inherits the environment plus r.env, never prompts
// (GIT_TERMINAL_PROMPT=0, GIT_ASKPASS empty, stdin /dev/null, no controlling
// terminal) and is killed, with everything it started, when ctx ends.
func (r runner) run(ctx context.Context, dir string, args ...string) (string, error) {
	bin := r.bin
	if bin == "" {
		bin = "git"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	env := append(os.Environ(), r.env...)
	cmd.Env = append(env, "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=", "GCM_INTERACTIVE=never")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	setProcessGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return stdout.String(), &gitError{cmd: gitCmdName(args), err: err, stderr: tail(stderr.String(), stderrLines)}
	}
	return stdout.String(), nil
}

// gitError is a failed git command: which subcommand, how it ended, and the
// last lines of what it said.
type gitError struct {
	cmd    string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git %s: %v", e.cmd, e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// gitCmdName is the subcommand in args, skipping global options.
func gitCmdName(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-c" || a == "-C":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return "?"
}

// tail keeps the last n non-empty lines of s, joined by "; ", at most 1000
// bytes.
func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "; ")
	if len(out) > 1000 {
		out = "..." + out[len(out)-997:]
	}
	return out
}
