package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/meshtls"
)

// Exit codes, the same for every subcommand.
const (
	exitOK          = 0 // done; for spawn --wait: the job passed
	exitFailed      = 1 // the job did not pass
	exitUsage       = 2 // bad flags or arguments
	exitUnavailable = 3 // node unreachable or no leader
	exitAuth        = 4 // credentials missing or refused
	exitNotFound    = 5 // no such job or task
	exitRefused     = 6 // the ledger refused (job closed, conflict)
	exitError       = 7 // anything else
	exitNoSpace     = 8 // the node's disk is full (a blob put)
)

// defaultNodeURL is where client commands look when nothing else is said.
const defaultNodeURL = "http://127.0.0.1:7380"

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// env returns $name, or def when it is unset or empty.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// homeDir is the default data directory: $OURCI_DATA_DIR or ~/.ourci.
func homeDir() string {
	if v := os.Getenv("OURCI_DATA_DIR"); v != "" {
		return v
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return ".ourci"
	}
	return filepath.Join(h, ".ourci")
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	node       string
	tokenFile  string
	secretFile string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.node, "node", env("OURCI_NODE", defaultNodeURL), "node API URL (env OURCI_NODE)")
	fs.StringVar(&c.tokenFile, "token-file", env("OURCI_TOKEN_FILE", ""), "file holding an API token (env OURCI_TOKEN_FILE)")
	fs.StringVar(&c.secretFile, "secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
}

// client builds an API client: a token from --token-file, else $OURCI_TOKEN
// (set inside tasks), else one derived from the cluster secret.
func (c *clientFlags) client() (*api.Client, error) {
	tok := ""
	switch {
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	case os.Getenv("OURCI_TOKEN") != "" && c.secretFile == "":
		tok = os.Getenv("OURCI_TOKEN")
	default:
		s, err := loadSecret(c.secretFile)
		if err != nil {
			return nil, fmt.Errorf("no credentials: give --secret-file, --token-file or $OURCI_TOKEN (%w)", err)
		}
		tok = s.ClusterToken()
	}
	return api.NewClient(c.node, tok), nil
}

// loadSecret loads the cluster secret from path, by default
// DATA_DIR/cluster.secret.
func loadSecret(path string) (node.Secret, error) {
	if path == "" {
		path = filepath.Join(homeDir(), "cluster.secret")
	}
	return node.LoadSecret(path)
}

// parse parses flags that may come before or after positional arguments;
// everything after "--" is positional.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exitFor maps an error to an exit code and prints it.
func exitFor(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "ourci-node:", safeText(err.Error())) // messages quote ledger data
	var se *api.StatusError
	switch {
	case errors.As(err, &se):
		switch {
		case se.HTTPStatus == http.StatusUnauthorized || se.HTTPStatus == http.StatusForbidden:
			return exitAuth
		case se.HTTPStatus == http.StatusNotFound:
			return exitNotFound
		case se.HTTPStatus == http.StatusConflict:
			return exitRefused
		case se.HTTPStatus == http.StatusBadRequest || se.HTTPStatus == http.StatusRequestEntityTooLarge:
			return exitUsage
		case se.HTTPStatus == http.StatusInsufficientStorage:
			return exitNoSpace
		case se.HTTPStatus == http.StatusTooManyRequests:
			return exitRefused
		case se.HTTPStatus >= 500:
			return exitUnavailable
		}
	case errors.Is(err, api.ErrUnavailable):
		return exitUnavailable
	case errors.Is(err, node.ErrSecret), errors.Is(err, meshtls.ErrCert):
		return exitAuth
	}
	return exitError
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ourci-node %s %s\n\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// clientCommand is what every client subcommand shares: its flags (plus
// --node and the credentials), exactly one positional argument, a client.
type clientCommand struct {
	name, arg string // e.g. "cancel", "JOB"
	fs        *flag.FlagSet
	cf        clientFlags
}

func newClientCommand(name, arg, usage string) *clientCommand {
	c := &clientCommand{name: name, arg: arg, fs: newFlagSet(name, usage)}
	c.cf.register(c.fs)
	return c
}

// parse reads args and returns the one positional argument and a client,
// or the exit code to return.
func (c *clientCommand) parse(args []string) (string, *api.Client, int) {
	pos, cl, code := c.parseN(args, 1, "give one "+c.arg, nil)
	if code != exitOK {
		return "", nil, code
	}
	return pos[0], cl, exitOK
}

// parseN reads args and returns exactly n positional arguments (else it
// prints "ourci-node NAME: " and want) and a client, or the exit code.
// check (nil: none) refuses flags that do not go together, before any
// credentials are read.
func (c *clientCommand) parseN(args []string, n int, want string, check func() error) ([]string, *api.Client, int) {
	pos, err := parse(c.fs, args)
	if err != nil {
		return nil, nil, exitUsage
	}
	if len(pos) != n {
		fmt.Fprintf(os.Stderr, "ourci-node %s: %s\n", c.name, want)
		return nil, nil, exitUsage
	}
	if check != nil {
		if err := check(); err != nil {
			fmt.Fprintf(os.Stderr, "ourci-node %s: %v\n", c.name, err)
			return nil, nil, exitUsage
		}
	}
	cl, err := c.cf.client()
	if err != nil {
		return nil, nil, exitFor(err)
	}
	return pos, cl, exitOK
}
