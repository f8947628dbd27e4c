package githubtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/github/githubtest"
)

var sha = strings.Repeat("c3", 20)

func post(t *testing.T, url, auth, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestServer(t *testing.T) {
	s := githubtest.New()
	defer s.Close()
	s.RequireToken("tok")
	path := "/repos/acme/widget/statuses/" + sha
	if r := post(t, s.URL()+path, "token nope", `{"state":"pending"}`); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", r.StatusCode)
	}
	if r := post(t, s.URL()+"/api/v3"+path, "token tok", `{"state":"pending","context":"ci"}`); r.StatusCode != http.StatusCreated {
		t.Fatalf("enterprise prefix: %d", r.StatusCode)
	}
	if r := post(t, s.URL()+path, "Bearer tok", `{"state":"weird"}`); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad state: %d", r.StatusCode)
	}
	s.FailNext(1)
	if r := post(t, s.URL()+path, "token tok", `{"state":"success"}`); r.StatusCode != http.StatusInternalServerError {
		t.Fatalf("FailNext: %d", r.StatusCode)
	}
	s.RateLimitNext()
	r := post(t, s.URL()+path, "token tok", `{"state":"success"}`)
	reset, _ := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
	if r.StatusCode != http.StatusForbidden || r.Header.Get("X-RateLimit-Remaining") != "0" ||
		time.Until(time.Unix(reset, 0)) > time.Second {
		t.Fatalf("RateLimitNext: %d %v", r.StatusCode, r.Header)
	}
	got := s.Statuses("acme", "widget", sha)
	if len(got) != 1 || got[0].Context != "ci" || got[0].Authorization != "token tok" || len(s.Requests()) != 5 {
		t.Fatalf("statuses %+v, %d requests", got, len(s.Requests()))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitStatus(ctx, "acme", "widget", sha, "success"); err == nil || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("WaitStatus: %v", err)
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(`{"state":"success"}`))
		req.Header.Set("Authorization", "token tok")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if err := s.WaitStatus(t.Context(), "acme", "widget", sha, "success"); err != nil {
		t.Fatal(err)
	}
}

func TestSMTPWithSendMail(t *testing.T) {
	s := githubtest.NewSMTP()
	defer s.Close()
	msg := "Subject: hi\r\n\r\nline one\r\n.leading dot\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com", "c@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	m, err := s.WaitMessage(t.Context())
	if err != nil || m.From != "a@example.com" || len(m.To) != 2 || string(m.Data) != "Subject: hi\n\nline one\n.leading dot\n" {
		t.Fatalf("%+v %q %v", m, m.Data, err)
	}
	s.FailNext(1)
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("FailNext: %v", err)
	}
}

func TestPayloadsAreJSON(t *testing.T) {
	for name, b := range map[string][]byte{
		"pr":     githubtest.PullRequest("opened", "acme", "widget", 1, sha, "f", true),
		"push":   githubtest.Push("acme", "widget", "refs/heads/main", sha, "a@example.com"),
		"delete": githubtest.Push("acme", "widget", "refs/heads/main", githubtest.ZeroSHA, "a@example.com"),
		"ping":   githubtest.Ping("acme", "widget"),
	} {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "delete" && (v["head_commit"] != nil || v["deleted"] != true) {
			t.Fatalf("deletion: %v", v)
		}
	}
	req, _ := githubtest.NewWebhookRequest("http://x/", []byte("s"), "ping", githubtest.NewDelivery(), []byte("{}"))
	if req.Header.Get("X-Hub-Signature-256") != githubtest.Sign([]byte("s"), []byte("{}")) || len(req.Header.Get("X-GitHub-Delivery")) != 36 {
		t.Fatalf("headers %v", req.Header)
	}
}
