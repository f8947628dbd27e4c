package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	gogithub "github.com/google/go-github/v60/github"
)

// Commit status states GitHub accepts.
const (
	StatePending = "pending"
	StateSuccess = "success"
	StateFailure = "failure"
	StateError   = "error"
)

// DefaultContext is the status context OurCI posts under.
const DefaultContext = "ourci"

// MaxDescription is GitHub's limit on a status description, in characters.
const MaxDescription = 140

// Statuses posts commit statuses through go-github v60
// (Repositories.CreateStatus) and looks up commit authors. Safe for
// concurrent use; set the fields before the first call.
type Statuses struct {
	Client  *gogithub.Client // built by NewStatuses
	Context string           // status context, default "ourci"
	Retries int              // retries after the first try, default 5 (negative: none)
	Backoff time.Duration    // first backoff, default 500ms, doubling, with jitter, capped at 30s
	// Sleep waits between tries; injectable for tests. The default
	// (SleepContext) sleeps honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// NewStatuses builds a client that authenticates with token
// ("Authorization: token ..."). baseURL "" means https://api.github.com/;
// anything else is a GitHub Enterprise or test server (client
// WithEnterpriseURLs: "/api/v3/" is appended unless present). httpClient is
// optional (default: a 30s timeout); it is copied, never modified. The token
// is sent only to the API's own host, never to a redirect elsewhere.
func NewStatuses(token, baseURL string, httpClient *http.Client) (*Statuses, error) {
	if err := checkToken(token); err != nil {
		return nil, err
	}
	client, err := newClient(baseURL, httpClient, func(base http.RoundTripper, scheme, host string) http.RoundTripper {
		return &tokenTransport{token: token, scheme: scheme, host: host, base: base}
	})
	if err != nil {
		return nil, err
	}
	return statusesWith(client), nil
}

// NewAppStatuses posts statuses as the GitHub App, with each repository's
// installation token.
func NewAppStatuses(app *App) *Statuses { return statusesWith(app.Client()) }

func statusesWith(client *gogithub.Client) *Statuses {
	return &Statuses{
		Client:  client,
		Context: DefaultContext,
		Retries: defaultRetries,
		Backoff: defaultBackoff,
		Sleep:   SleepContext,
	}
}

// newClient builds a go-github client for baseURL ("" is api.github.com)
// over a copy of httpClient (default: a 30s timeout) whose transport wrap
// wraps (nil: as it is), told the API's scheme and host.
func newClient(baseURL string, httpClient *http.Client, wrap func(base http.RoundTripper, scheme, host string) http.RoundTripper) (*gogithub.Client, error) {
	hc := http.Client{Timeout: 30 * time.Second}
	if httpClient != nil {
		hc = *httpClient
	}
	scheme, host, enterprise := "https", "api.github.com", false
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("github: API base URL %q is not an http(s) URL", redactURL(baseURL))
		}
		scheme, host, enterprise = u.Scheme, u.Host, u.Host != "api.github.com"
	}
	if wrap != nil {
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = wrap(base, scheme, host)
	}
	client := gogithub.NewClient(&hc) // copies hc
	if enterprise {
		var err error
		if client, err = client.WithEnterpriseURLs(baseURL, baseURL); err != nil {
			return nil, fmt.Errorf("github: API base URL %q: %w", redactURL(baseURL), err)
		}
	}
	client.UserAgent = "ourci"
	return client, nil
}

// tokenTransport adds the token to requests for the API's scheme and host
// only (not to a redirect elsewhere, nor down to plain http).
type tokenTransport struct {
	token        string
	scheme, host string
	base         http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.URL.Scheme != t.scheme {
		return t.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "token "+t.token)
	return t.base.RoundTrip(req)
}

// String keeps the token out of %v and %+v.
func (t *tokenTransport) String() string { return "github.tokenTransport{host: " + t.host + "}" }

func (s *Statuses) policy() retryPolicy { return newPolicy(s.Retries, s.Backoff, s.Sleep) }

// Set posts state ("pending", "success", "failure", "error") for owner/repo
// at sha, with a target URL and a description (cut to 140 characters, as
// GitHub requires). 5xx and network errors are retried with backoff; on a
// rate limit (403/429 with X-RateLimit-Remaining: 0 or Retry-After) it
// waits until the reset (bounded by ctx) and retries; any other 4xx is
// permanent and the error wraps ErrPermanent, as does a malformed argument.
func (s *Statuses) Set(ctx context.Context, owner, repo, sha, state, targetURL, description string) error {
	switch state {
	case StatePending, StateSuccess, StateFailure, StateError:
	default:
		return fmt.Errorf("%w: status state %q is not pending, success, failure or error", ErrPermanent, state)
	}
	if err := checkCommit(owner, repo, sha); err != nil {
		return err
	}
	ctxName := s.Context
	if ctxName == "" {
		ctxName = DefaultContext
	}
	st := &gogithub.RepoStatus{
		State:       gogithub.String(state),
		Description: gogithub.String(Truncate(description, MaxDescription)),
		Context:     gogithub.String(ctxName),
	}
	if targetURL != "" {
		st.TargetURL = gogithub.String(targetURL)
	}
	err := s.policy().do(ctx, func() (*gogithub.Response, error) {
		_, resp, err := s.Client.Repositories.CreateStatus(ctx, owner, repo, sha, st)
		return okIfAccepted(resp, err)
	})
	if err != nil {
		return fmt.Errorf("github: set status %s on %s/%s@%s: %w", state, owner, repo, shortSHA(sha), err)
	}
	return nil
}

// AuthorEmail looks up the e-mail of a commit's author
// (Repositories.GetCommit), for pull requests, whose payload lacks it. It is
// "" without error when GitHub has none. Retries as Set does.
func (s *Statuses) AuthorEmail(ctx context.Context, owner, repo, sha string) (string, error) {
	if err := checkCommit(owner, repo, sha); err != nil {
		return "", err
	}
	var email string
	err := s.policy().do(ctx, func() (*gogithub.Response, error) {
		c, resp, err := s.Client.Repositories.GetCommit(ctx, owner, repo, sha, nil)
		if err == nil {
			email = c.GetCommit().GetAuthor().GetEmail()
		}
		return resp, err
	})
	if err != nil {
		return "", fmt.Errorf("github: get commit %s/%s@%s: %w", owner, repo, shortSHA(sha), err)
	}
	return email, nil
}

// okIfAccepted treats an answer GitHub accepted (2xx, also 202, even one
// whose body did not decode) as success: retrying would post the status
// twice.
func okIfAccepted(resp *gogithub.Response, err error) (*gogithub.Response, error) {
	if err != nil && resp != nil && resp.Response != nil && resp.StatusCode/100 == 2 {
		return resp, nil
	}
	return resp, err
}

func checkCommit(owner, repo, sha string) error {
	if !validName(owner) || !validName(repo) {
		return fmt.Errorf("%w: %q/%q is not a GitHub owner/repository", ErrPermanent, owner, repo)
	}
	if !validSHA(sha) {
		return fmt.Errorf("%w: %q is not a full commit id", ErrPermanent, sha)
	}
	return nil
}

// Truncate cuts s to at most n characters (runes), ending in "…" when cut,
// and replaces invalid UTF-8.
func Truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func shortSHA(sha string) string { return sha[:min(len(sha), 12)] }

// redactURL drops any userinfo and query from a URL for an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
