package github_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

const token = "ghp_test0123456789TOKEN"

// sleeps records the waits a Statuses asks for and returns at once.
type sleeps struct {
	mu   sync.Mutex
	d    []time.Duration
	real bool // also really sleep (for go-github's own rate-limit memory)
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	if s.real {
		return github.SleepContext(ctx, d)
	}
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newStatuses(t *testing.T) (*githubtest.Server, *github.Statuses, *sleeps) {
	t.Helper()
	srv := githubtest.New()
	t.Cleanup(srv.Close)
	srv.RequireToken(token)
	st, err := github.NewStatuses(token, srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeps{}
	st.Sleep = sl.sleep
	return srv, st, sl
}

func posts(srv *githubtest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPost {
			n++
		}
	}
	return n
}

func TestSetRecordsStatus(t *testing.T) {
	srv, st, sl := newStatuses(t)
	ctx := t.Context()
	if err := st.Set(ctx, "acme", "widget", sha1, "pending", "https://ci.example/jobs/abc", "0/3 tasks done"); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(ctx, "acme", "widget", sha1, "success", "https://ci.example/jobs/abc", "3/3 passed"); err != nil {
		t.Fatal(err)
	}
	got := srv.Statuses("acme", "widget", sha1)
	if len(got) != 2 || got[0].State != "pending" || got[1].State != "success" {
		t.Fatalf("statuses: %+v", got)
	}
	s := got[0]
	if s.Context != "ourci" || s.TargetURL != "https://ci.example/jobs/abc" || s.Description != "0/3 tasks done" ||
		s.Authorization != "token "+token {
		t.Fatalf("status: %+v", s)
	}
	if err := srv.WaitStatus(ctx, "acme", "widget", sha1, "success"); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests()[0]; r.Path != "/repos/acme/widget/statuses/"+sha1 || r.Code != http.StatusCreated {
		t.Fatalf("request %+v", r)
	}
	if len(sl.got()) != 0 {
		t.Fatalf("slept %v", sl.got())
	}
}

func TestSetRetries5xx(t *testing.T) {
	srv, st, sl := newStatuses(t)
	srv.FailNext(2)
	if err := st.Set(t.Context(), "acme", "widget", sha1, "failure", "", "task t1 failed"); err != nil {
		t.Fatal(err)
	}
	if n := posts(srv); n != 3 {
		t.Fatalf("%d POSTs, want 3", n)
	}
	d := sl.got()
	if len(d) != 2 || d[0] < 250*time.Millisecond || d[0] > 500*time.Millisecond || d[1] < 500*time.Millisecond || d[1] > time.Second {
		t.Fatalf("backoff %v, want ~500ms then ~1s (jittered down to half)", d)
	}
	if got := srv.Statuses("acme", "widget", sha1); len(got) != 1 || got[0].State != "failure" {
		t.Fatalf("statuses %+v", got)
	}
}

func TestSetGivesUpAfterRetries(t *testing.T) {
	srv, st, sl := newStatuses(t)
	st.Retries = 2
	srv.FailNext(10)
	err := st.Set(t.Context(), "acme", "widget", sha1, "error", "", "")
	if err == nil || errors.Is(err, github.ErrPermanent) || posts(srv) != 3 || len(sl.got()) != 2 {
		t.Fatalf("err %v, %d POSTs, sleeps %v", err, posts(srv), sl.got())
	}
}

func TestSetWaitsForRateLimit(t *testing.T) {
	srv, st, sl := newStatuses(t)
	sl.real = true // go-github refuses to send until the reset has passed
	srv.RateLimitNext()
	start := time.Now()
	if err := st.Set(t.Context(), "acme", "widget", sha1, "pending", "", ""); err != nil {
		t.Fatal(err)
	}
	d := sl.got()
	if len(d) != 1 || d[0] <= 0 || d[0] > 1500*time.Millisecond {
		t.Fatalf("waits %v, want one of about the second until X-RateLimit-Reset", d)
	}
	if posts(srv) != 2 || len(srv.Statuses("acme", "widget", sha1)) != 1 {
		t.Fatalf("%d POSTs, statuses %+v", posts(srv), srv.Statuses("acme", "widget", sha1))
	}
	t.Logf("waited %v (asked %v)", time.Since(start), d[0])
}

func TestSetWaitsForRetryAfter(t *testing.T) {
	srv, st, sl := newStatuses(t)
	srv.SecondaryRateLimitNext(0) // a secondary limit: 403 + Retry-After
	srv.RespondNext(http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, `{"message":"slow down"}`)
	if err := st.Set(t.Context(), "acme", "widget", sha1, "pending", "", ""); err != nil {
		t.Fatal(err)
	}
	d := sl.got()
	if len(d) != 2 || d[0] > time.Second || d[1] < 7*time.Second || d[1] > 8*time.Second {
		t.Fatalf("waits %v, want ~0s then ~7s", d)
	}
	if posts(srv) != 3 {
		t.Fatalf("%d POSTs", posts(srv))
	}
}

func TestSetPermanent(t *testing.T) {
	srv, st, sl := newStatuses(t)
	err := st.Set(t.Context(), "acme", "widget", sha1, "pending", "not a url", "") // GitHub answers 422
	if !errors.Is(err, github.ErrPermanent) || !strings.Contains(err.Error(), "422") {
		t.Fatalf("err %v", err)
	}
	srv.FailNextStatus(1, http.StatusNotFound)
	if err := st.Set(t.Context(), "acme", "widget", sha1, "pending", "", ""); !errors.Is(err, github.ErrPermanent) {
		t.Fatalf("404: %v", err)
	}
	if posts(srv) != 2 || len(sl.got()) != 0 {
		t.Fatalf("%d POSTs, sleeps %v: permanent errors must not be retried", posts(srv), sl.got())
	}
	for _, args := range [][4]string{
		{"acme", "widget", sha1, "done"},
		{"acme/x", "widget", sha1, "success"},
		{"acme", "..", sha1, "success"},
		{"acme", "widget", "main", "success"},
	} {
		if err := st.Set(t.Context(), args[0], args[1], args[2], args[3], "", ""); !errors.Is(err, github.ErrPermanent) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if posts(srv) != 2 {
		t.Fatal("malformed arguments reached the server")
	}
}

func TestSetBadTokenErrorHidesToken(t *testing.T) {
	srv := githubtest.New()
	defer srv.Close()
	srv.RequireToken("the-right-one")
	st, _ := github.NewStatuses(token, srv.URL(), nil)
	err := st.Set(t.Context(), "acme", "widget", sha1, "pending", "", "")
	if !errors.Is(err, github.ErrPermanent) || strings.Contains(err.Error(), token) {
		t.Fatalf("err %v", err)
	}
	if _, err := github.NewStatuses("", srv.URL(), nil); !errors.Is(err, github.ErrToken) {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := github.NewStatuses("two\nlines", srv.URL(), nil); !errors.Is(err, github.ErrToken) || strings.Contains(err.Error(), "two") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestSetTruncatesDescription(t *testing.T) {
	srv, st, _ := newStatuses(t)
	long := strings.Repeat("é", 200)
	if err := st.Set(t.Context(), "acme", "widget", sha1, "failure", "", long); err != nil {
		t.Fatal(err)
	}
	d := srv.Statuses("acme", "widget", sha1)[0].Description
	if utf8.RuneCountInString(d) != 140 || !strings.HasSuffix(d, "…") || !strings.HasPrefix(d, "éé") {
		t.Fatalf("description %q (%d chars)", d, utf8.RuneCountInString(d))
	}
	if got := github.Truncate("short", 140); got != "short" {
		t.Fatal(got)
	}
}

func TestSetHonoursContext(t *testing.T) {
	srv, st, _ := newStatuses(t)
	st.Sleep = nil // the real one
	st.Backoff = time.Hour
	srv.FailNext(1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := st.Set(ctx, "acme", "widget", sha1, "pending", "", "")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestSetConcurrent(t *testing.T) {
	srv, st, _ := newStatuses(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			sha := strings.Repeat(string("01234567"[i]), 40)
			if err := st.Set(t.Context(), "acme", "widget", sha, "success", "", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(srv.AllStatuses()); n != 8 {
		t.Fatalf("%d statuses", n)
	}
}

func TestTokenNotSentOnRedirect(t *testing.T) {
	var leaked string
	reached := false
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked, reached = r.Header.Get("Authorization"), true
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("{}"))
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	st, _ := github.NewStatuses(token, api.URL, nil)
	st.Set(t.Context(), "acme", "widget", sha1, "pending", "", "")
	if !reached {
		t.Fatal("the redirect was not followed")
	}
	if leaked != "" {
		t.Fatalf("token sent to another host: %q", leaked)
	}
}

func TestAuthorEmail(t *testing.T) {
	srv, st, _ := newStatuses(t)
	srv.SetAuthorEmail(sha2, "author@example.com")
	srv.FailNext(1)
	email, err := st.AuthorEmail(t.Context(), "acme", "widget", sha2)
	if err != nil || email != "author@example.com" {
		t.Fatalf("AuthorEmail = %q, %v", email, err)
	}
	if _, err := st.AuthorEmail(t.Context(), "acme", "widget", sha1); !errors.Is(err, github.ErrPermanent) {
		t.Fatalf("unknown commit: %v", err)
	}
}
