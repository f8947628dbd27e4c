package githubtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Status is one commit status the Server received.
type Status struct {
	Owner, Repo, SHA string
	State            string
	TargetURL        string
	Description      string
	Context          string
	Authorization    string // the request's Authorization header, as sent
	ID               int64
	CreatedAt        time.Time
}

// Request is one request the Server received, and its answer's code.
type Request struct {
	Method, Path  string
	Authorization string
	Code          int
}

// fault is a canned answer for the next request.
type fault struct {
	code   int
	header http.Header
	body   string
	reset  bool // set X-RateLimit-Reset a second ahead when answering
}

// Server is a local stand-in for GitHub's REST API. It serves
// POST /repos/{owner}/{repo}/statuses/{sha},
// GET /repos/{owner}/{repo}/commits/{sha}, the check runs
// (POST /repos/{owner}/{repo}/check-runs, PATCH and GET .../check-runs/{id},
// GET .../commits/{ref}/check-runs) and, once SetApp is called, a GitHub
// App's authentication (GET /repos/{owner}/{repo}/installation,
// POST /app/installations/{id}/access_tokens), with or without the /api/v3
// prefix of GitHub Enterprise.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses []Status
	requests []Request
	emails   map[string]string // sha → author e-mail
	faults   []fault
	token    string
	changed  chan struct{} // closed and replaced when a status or check run is recorded
	app      *appState     // SetApp: App authentication
	now      func() time.Time
	checks   []*CheckRun
}

// New starts a Server. Close it when done.
func New() *Server {
	s := &Server{emails: map[string]string{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.createStatus)
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{sha}", s.getCommit)
	mux.HandleFunc("GET /repos/{owner}/{repo}/installation", s.getInstallation)
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.createToken)
	mux.HandleFunc("POST /repos/{owner}/{repo}/check-runs", s.createCheckRun)
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/check-runs/{id}", s.updateCheckRun)
	mux.HandleFunc("GET /repos/{owner}/{repo}/check-runs/{id}", s.getCheckRun)
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", s.listCheckRuns)
	s.srv = httptest.NewServer(s.front(mux))
	return s
}

// URL is the base URL to give github.NewStatuses.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// RequireToken makes every request without "Authorization: token TOKEN"
// (or "Bearer TOKEN") fail with 401, as GitHub does.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// FailNext makes the next n requests fail with 500.
func (s *Server) FailNext(n int) { s.FailNextStatus(n, http.StatusInternalServerError) }

// FailNextStatus makes the next n requests fail with code and a GitHub-like
// error body.
func (s *Server) FailNextStatus(n, code int) {
	for range n {
		s.RespondNext(code, nil, fmt.Sprintf(`{"message":%q,"documentation_url":"https://docs.github.com/rest"}`, http.StatusText(code)))
	}
}

// RateLimitNext makes the next request hit the primary rate limit: 403
// with X-RateLimit-Remaining: 0 and X-RateLimit-Reset a second ahead.
func (s *Server) RateLimitNext() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{code: http.StatusForbidden, reset: true,
		body: `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`})
}

// SecondaryRateLimitNext makes the next request hit a secondary rate limit:
// 403 with Retry-After (whole seconds) and GitHub's documentation URL.
func (s *Server) SecondaryRateLimitNext(retryAfter time.Duration) {
	h := http.Header{"Retry-After": {strconv.Itoa(int(retryAfter / time.Second))}}
	s.RespondNext(http.StatusForbidden, h, `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`)
}

// RespondNext queues a canned answer for the next request not yet served
// by an earlier canned answer.
func (s *Server) RespondNext(code int, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{code: code, header: header.Clone(), body: body})
}

// SetAuthorEmail sets the author e-mail GET .../commits/{sha} answers with;
// an unknown sha answers 422 "No commit found", as GitHub does.
func (s *Server) SetAuthorEmail(sha, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emails[strings.ToLower(sha)] = email
}

// Statuses returns the statuses posted for owner/repo at sha, in order.
func (s *Server) Statuses(owner, repo, sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, st := range s.statuses {
		if strings.EqualFold(st.Owner, owner) && strings.EqualFold(st.Repo, repo) && strings.EqualFold(st.SHA, sha) {
			out = append(out, st)
		}
	}
	return out
}

// AllStatuses returns every status posted, in order.
func (s *Server) AllStatuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// Requests returns every request received, in order (canned failures too).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitStatus waits until a status with state has been posted for
// owner/repo at sha, or ctx is done.
func (s *Server) WaitStatus(ctx context.Context, owner, repo, sha, state string) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		for _, st := range s.Statuses(owner, repo, sha) {
			if st.State == state {
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("githubtest: no %s status for %s/%s@%s (have %v): %w",
				state, owner, repo, sha, states(s.Statuses(owner, repo, sha)), ctx.Err())
		}
	}
}

func states(sts []Status) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = st.State
	}
	return out
}

// front records the request, checks the token, serves canned answers and
// strips GitHub Enterprise's /api/v3 prefix.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/api/v3/"); ok {
			r.URL.Path, r.URL.RawPath = "/"+p, ""
		}
		rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			s.mu.Lock()
			s.requests = append(s.requests, Request{r.Method, r.URL.Path, r.Header.Get("Authorization"), rec.code})
			s.mu.Unlock()
		}()
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("%X", time.Now().UnixNano()))
		s.mu.Lock()
		token := s.token
		appRefusal := ""
		if s.app != nil {
			appRefusal = s.appAuth(r)
			token = ""
		}
		var f *fault
		if len(s.faults) > 0 {
			first := s.faults[0]
			f = &first
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		if appRefusal != "" {
			writeJSON(rec, http.StatusUnauthorized, fmt.Sprintf(`{"message":%q,"documentation_url":"https://docs.github.com/rest"}`, appRefusal))
			return
		}
		if token != "" {
			a := r.Header.Get("Authorization")
			if a != "token "+token && a != "Bearer "+token {
				writeJSON(rec, http.StatusUnauthorized, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
				return
			}
		}
		if f != nil {
			for k, v := range f.header {
				rec.Header()[k] = v
			}
			if f.reset {
				rec.Header().Set("X-RateLimit-Remaining", "0")
				rec.Header().Set("X-RateLimit-Used", "5000")
				rec.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
			}
			writeJSON(rec, f.code, f.body)
			return
		}
		next.ServeHTTP(rec, r)
	})
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}

func validationFailed(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, fmt.Sprintf(
		`{"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","field":%q,"message":%q}],"documentation_url":"https://docs.github.com/rest/commits/statuses#create-a-commit-status"}`,
		field, msg))
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
