package github

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gogithub "github.com/google/go-github/v60/github"
)

// The environment variables the App flags fall back to.
const (
	AppIDEnv      = "OURCI_GITHUB_APP_ID"
	AppKeyFileEnv = "OURCI_GITHUB_APP_KEY_FILE"
)

const (
	// jwtBackdate is how far in the past an app JWT's iat lies: GitHub
	// advises 60 seconds, for clock drift.
	jwtBackdate = 60 * time.Second
	// jwtLifetime is how far past now its exp lies; GitHub takes at most 10
	// minutes.
	jwtLifetime = 9 * time.Minute
	// TokenMargin is how long before its expires_at an installation token
	// is replaced (GitHub's last an hour).
	TokenMargin = 5 * time.Minute
	maxKeyFile  = 64 << 10
)

// ErrAppKey marks a missing or unusable GitHub App private key. Messages
// name the file, never a byte of the key.
var ErrAppKey = errors.New("github: app private key")

// ParseAppID reads a GitHub App ID (a positive integer).
func ParseAppID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("github: app id %q is not a positive integer", s)
	}
	return id, nil
}

// LoadAppKey reads a GitHub App's private key: the PEM file GitHub
// generates (PKCS #1, "RSA PRIVATE KEY"), or PKCS #8 holding an RSA key.
func LoadAppKey(path string) (*rsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAppKey, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: read %s failed", ErrAppKey, path)
	case len(b) > maxKeyFile:
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrAppKey, path, maxKeyFile)
	}
	key, err := ParseAppKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return key, nil
}

// ParseAppKey decodes a PEM-encoded RSA private key (PKCS #1 or #8).
func ParseAppKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrAppKey)
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS #1 key does not parse", ErrAppKey)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS #8 key does not parse", ErrAppKey)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: the key is not RSA (GitHub Apps sign with RS256)", ErrAppKey)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("%w: PEM block %q is not a private key", ErrAppKey, blk.Type)
}

// App authenticates as a GitHub App: it signs app JWTs (RS256) and trades
// them for installation tokens, one per installation, cached until
// TokenMargin before they expire. Safe for concurrent use; set Now before
// the first call.
type App struct {
	ID  int64
	Key *rsa.PrivateKey
	// Now is the clock the JWT and the token cache read; default time.Now.
	Now func() time.Time

	jwtClient *gogithub.Client // authenticates with the app JWT
	repoHTTP  *http.Client     // authenticates each request with its repository's installation token
	baseURL   string
	hc        http.Client

	mu       sync.Mutex
	installs map[string]int64 // "owner/repo" (lower case) → installation
	tokens   map[int64]instToken
}

type instToken struct {
	token   string
	expires time.Time
}

// NewApp builds an App for the API at baseURL ("" is api.github.com; see
// NewStatuses). httpClient is optional and copied.
func NewApp(id int64, key *rsa.PrivateKey, baseURL string, httpClient *http.Client) (*App, error) {
	if id <= 0 {
		return nil, fmt.Errorf("github: app id %d is not positive", id)
	}
	if key == nil {
		return nil, fmt.Errorf("%w: none given", ErrAppKey)
	}
	a := &App{ID: id, Key: key, baseURL: baseURL, installs: map[string]int64{}, tokens: map[int64]instToken{}}
	var err error
	a.jwtClient, err = newClient(baseURL, httpClient, func(base http.RoundTripper, scheme, host string) http.RoundTripper {
		return &jwtTransport{app: a, scheme: scheme, host: host, base: base}
	})
	if err != nil {
		return nil, err
	}
	repoClient, err := newClient(baseURL, httpClient, func(base http.RoundTripper, scheme, host string) http.RoundTripper {
		return &installTransport{app: a, scheme: scheme, host: host, base: base}
	})
	if err != nil {
		return nil, err
	}
	a.repoHTTP = repoClient.Client()
	return a, nil
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// JWT is a fresh app JWT: iss the app ID, iat a minute ago, exp nine
// minutes ahead, signed RS256 with the app's key.
func (a *App) JWT() (string, error) {
	now := a.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-jwtBackdate)),
		ExpiresAt: jwt.NewNumericDate(now.Add(jwtLifetime)),
	})
	s, err := tok.SignedString(a.Key)
	if err != nil {
		return "", fmt.Errorf("github: sign the app JWT: %w", err)
	}
	return s, nil
}

// Token is an installation token for owner/repo: the cached one while it
// has more than TokenMargin left, else a new one (GET
// /repos/{owner}/{repo}/installation, POST
// /app/installations/{id}/access_tokens). An App not installed on the
// repository is an error wrapping ErrPermanent.
func (a *App) Token(ctx context.Context, owner, repo string) (string, error) {
	if !validName(owner) || !validName(repo) {
		return "", fmt.Errorf("%w: %q/%q is not a GitHub owner/repository", ErrPermanent, owner, repo)
	}
	key := strings.ToLower(owner + "/" + repo)
	a.mu.Lock()
	inst, known := a.installs[key]
	if t, ok := a.tokens[inst]; known && ok && a.now().Before(t.expires.Add(-TokenMargin)) {
		a.mu.Unlock()
		return t.token, nil
	}
	a.mu.Unlock()
	pol := newPolicy(0, 0, nil)
	if !known {
		err := pol.do(ctx, func() (*gogithub.Response, error) {
			in, resp, err := a.jwtClient.Apps.FindRepositoryInstallation(ctx, owner, repo)
			if err == nil {
				inst = in.GetID()
			}
			return resp, err
		})
		if err != nil {
			return "", fmt.Errorf("github: find the app's installation on %s/%s: %w", owner, repo, err)
		}
		if inst == 0 {
			return "", fmt.Errorf("github: find the app's installation on %s/%s: %w: answer without an id", owner, repo, ErrPermanent)
		}
	}
	var t instToken
	err := pol.do(ctx, func() (*gogithub.Response, error) {
		it, resp, err := a.jwtClient.Apps.CreateInstallationToken(ctx, inst, nil)
		if err == nil {
			t = instToken{token: it.GetToken(), expires: it.GetExpiresAt().Time}
		}
		return resp, err
	})
	if err != nil {
		return "", fmt.Errorf("github: installation token for %s/%s (installation %d): %w", owner, repo, inst, err)
	}
	if err := checkToken(t.token); err != nil {
		return "", fmt.Errorf("github: installation token for %s/%s: %w: %w", owner, repo, ErrPermanent, err)
	}
	a.mu.Lock()
	a.installs[key] = inst
	a.tokens[inst] = t
	a.mu.Unlock()
	return t.token, nil
}

// Forget drops owner/repo's cached installation and token (GitHub refused
// the token: revoked, or the App was reinstalled).
func (a *App) Forget(owner, repo string) {
	key := strings.ToLower(owner + "/" + repo)
	a.mu.Lock()
	defer a.mu.Unlock()
	if inst, ok := a.installs[key]; ok {
		delete(a.tokens, inst)
		delete(a.installs, key)
	}
}

// Client is a go-github client whose requests to /repos/{owner}/{repo}/...
// carry that repository's installation token; a 401 drops the token and
// the request is sent once more with a new one.
func (a *App) Client() *gogithub.Client {
	c, _ := newClient(a.baseURL, a.repoHTTP, nil) // the URL was checked by NewApp
	return c
}

// jwtTransport authenticates with a fresh app JWT.
type jwtTransport struct {
	app          *App
	scheme, host string
	base         http.RoundTripper
}

func (t *jwtTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.URL.Scheme != t.scheme {
		return t.base.RoundTrip(req)
	}
	tok, err := t.app.JWT()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(req)
}

// installTransport authenticates a repository's requests with its
// installation token.
type installTransport struct {
	app          *App
	scheme, host string
	base         http.RoundTripper
}

func (t *installTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.URL.Scheme != t.scheme {
		return t.base.RoundTrip(req)
	}
	owner, repo, ok := repoOfPath(req.URL.Path)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a repository's API path: no installation token for it", ErrPermanent, req.URL.Path)
	}
	for try := 0; ; try++ {
		tok, err := t.app.Token(req.Context(), owner, repo)
		if err != nil {
			return nil, err
		}
		r := req.Clone(req.Context())
		if try > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, fmt.Errorf("github: request to %s refused with 401 and its body cannot be sent again", req.URL.Path)
			}
			if r.Body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("github: resend request to %s: %w", req.URL.Path, err)
			}
		}
		r.Header.Set("Authorization", "token "+tok)
		resp, err := t.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || try > 0 {
			return resp, err
		}
		// Revoked or expired early: a new token, once.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		t.app.Forget(owner, repo)
	}
}

// repoOfPath reads owner and repo from an API path
// ([/api/v3]/repos/{owner}/{repo}/...).
func repoOfPath(p string) (owner, repo string, ok bool) {
	p = strings.TrimPrefix(p, "/api/v3")
	rest, ok := strings.CutPrefix(p, "/repos/")
	if !ok {
		return "", "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || !validName(parts[0]) || !validName(parts[1]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// String keeps the key out of %v.
func (a *App) String() string { return "github.App{id: " + strconv.FormatInt(a.ID, 10) + "}" }
