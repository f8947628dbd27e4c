package github

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// TokenEnv is the environment variable LoadToken reads when given no file.
const TokenEnv = "OURCI_GITHUB_TOKEN"

// maxTokenFile bounds what LoadToken reads: tokens are well under 1 KiB.
const maxTokenFile = 64 << 10

// ErrToken marks a missing or unusable API token. Its messages never
// contain the token, nor any part of the file it came from.
var ErrToken = errors.New("github: API token")

// LoadToken reads the GitHub API token from a file (surrounding white space
// trimmed) or, if path is "", from $OURCI_GITHUB_TOKEN; never from flags,
// which other users can read in the process list. The token never appears
// in an error: errors name the file or the variable, and why.
func LoadToken(path string) (string, error) {
	if path == "" {
		tok := strings.TrimSpace(os.Getenv(TokenEnv))
		if tok == "" {
			return "", fmt.Errorf("%w: $%s is empty and no token file is given", ErrToken, TokenEnv)
		}
		if err := checkToken(tok); err != nil {
			return "", fmt.Errorf("%w (from $%s)", err, TokenEnv)
		}
		return tok, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrToken, err) // *PathError: op, path, errno
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: token file %s is not a regular file", ErrToken, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("%w: read token file %s failed", ErrToken, path)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%w: token file %s is larger than %d bytes", ErrToken, path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrToken, path)
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("%w (in file %s)", err, path)
	}
	return tok, nil
}

// checkToken refuses a token that cannot travel in an HTTP header: empty,
// or holding white space or control characters (say, two lines pasted into
// the file). The message never quotes the token.
func checkToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("%w: empty", ErrToken)
	}
	for _, c := range []byte(tok) {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: contains white space or control characters (one token on one line expected)", ErrToken)
		}
	}
	return nil
}
