package github_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

func failedPR() github.Notification {
	return github.Notification{
		Kind: "failed", Job: "abc123", Status: "failed", Reason: "task t2 (ourci/build/docker) exited with code 2",
		URL: "http://node1:8080/jobs/abc123", Repo: "acme/widget", SHA: sha1, Branch: "fix/login", PR: 12,
		To: github.Author{Name: "Dev Eloper", Email: "dev@example.com", Login: "dev"},
	}
}

type hookSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   []github.Notification
	sigs  []string
	hits  atomic.Int32
	codes []int // answers, in order; then 200
}

func newHookSink(t *testing.T, codes ...int) *hookSink {
	h := &hookSink{codes: codes}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(h.hits.Add(1)) - 1
		if n < len(h.codes) {
			w.WriteHeader(h.codes[n])
			return
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		var got github.Notification
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Errorf("decode: %v", err)
		}
		h.mu.Lock()
		h.got = append(h.got, got)
		h.sigs = append(h.sigs, r.Header.Get(github.HeaderNotifySignature))
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestNotifierWebhook(t *testing.T) {
	h := newHookSink(t)
	nt := &github.Notifier{WebhookURL: h.srv.URL, WebhookSecret: []byte("hook-secret")}
	n := failedPR()
	if err := nt.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	n.SchemaVersion = 1
	if len(h.got) != 1 || h.got[0] != n {
		t.Fatalf("received %+v, want %+v", h.got, n)
	}
	body, _ := json.Marshal(n)
	if h.sigs[0] != githubtest.Sign([]byte("hook-secret"), body) {
		t.Fatalf("signature %q", h.sigs[0])
	}
	var raw map[string]any
	json.Unmarshal(body, &raw)
	for _, k := range []string{"schema_version", "kind", "job", "status", "reason", "url", "repo", "sha", "branch", "pr", "to"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, body)
		}
	}
}

func TestNotifierMail(t *testing.T) {
	smtpd := githubtest.NewSMTP()
	defer smtpd.Close()
	nt := &github.Notifier{SMTPAddr: smtpd.Addr(), SMTPFrom: "OurCI <ci@example.com>", SMTPUser: "ci", SMTPPassword: "pw"}
	n := failedPR()
	n.Reason += "\r\nBcc: victim@example.com" // a header injection attempt
	if err := nt.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	m, err := smtpd.WaitMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "ci@example.com" || len(m.To) != 1 || m.To[0] != "dev@example.com" || m.User != "ci" {
		t.Fatalf("envelope %+v", m)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	if s := msg.Header.Get("Subject"); s != "[ourci] acme/widget PR #12 failed: job abc123" {
		t.Fatalf("subject %q", s)
	}
	to, _ := mail.ParseAddress(msg.Header.Get("To"))
	if to == nil || to.Address != "dev@example.com" || to.Name != "Dev Eloper" || msg.Header.Get("Bcc") != "" {
		t.Fatalf("headers %v", msg.Header)
	}
	body, _ := io.ReadAll(msg.Body)
	for _, want := range []string{"http://node1:8080/jobs/abc123", "exited with code 2", sha1, "fix/login", "#12"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestNotifierSubjects(t *testing.T) {
	n := failedPR()
	n.PR, n.Branch, n.Kind = 0, "main", "recovered"
	if s := github.Subject(n); s != "[ourci] acme/widget main recovered: job abc123" {
		t.Fatal(s)
	}
	n.Branch = ""
	if s := github.Subject(n); s != "[ourci] acme/widget "+sha1[:12]+" recovered: job abc123" {
		t.Fatal(s)
	}
}

func TestNotifierWebhookFailsMailStillSent(t *testing.T) {
	h := newHookSink(t, 500, 502, 503, 500, 500)
	smtpd := githubtest.NewSMTP()
	defer smtpd.Close()
	sl := &sleeps{}
	nt := &github.Notifier{WebhookURL: h.srv.URL + "/hook?key=hook-key-123", SMTPAddr: smtpd.Addr(),
		SMTPFrom: "ci@example.com", Retries: 3, Sleep: sl.sleep}
	err := nt.Send(t.Context(), failedPR())
	if err == nil || h.hits.Load() != 4 || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err %v after %d hits, want an error after 4", err, h.hits.Load())
	}
	if strings.Contains(err.Error(), "hook-key-123") {
		t.Fatalf("error shows the webhook URL's query: %v", err)
	}
	if len(smtpd.Messages()) != 1 {
		t.Fatalf("%d mails; a failing webhook must not stop the e-mail", len(smtpd.Messages()))
	}
}

func TestNotifierRetriesMail(t *testing.T) {
	smtpd := githubtest.NewSMTP()
	defer smtpd.Close()
	smtpd.FailNext(2)
	sl := &sleeps{}
	nt := &github.Notifier{SMTPAddr: smtpd.Addr(), SMTPFrom: "ci@example.com", Sleep: sl.sleep}
	if err := nt.Send(t.Context(), failedPR()); err != nil {
		t.Fatal(err)
	}
	if len(smtpd.Messages()) != 1 || len(sl.got()) != 2 {
		t.Fatalf("%d mails after %d waits", len(smtpd.Messages()), len(sl.got()))
	}
}

func TestNotifierPermanentAndSkipped(t *testing.T) {
	h := newHookSink(t, http.StatusBadRequest)
	smtpd := githubtest.NewSMTP()
	defer smtpd.Close()
	sl := &sleeps{}
	nt := &github.Notifier{WebhookURL: h.srv.URL, SMTPAddr: smtpd.Addr(), SMTPFrom: "ci@example.com", Sleep: sl.sleep}
	n := failedPR()
	n.To.Email = "12345+dev@users.noreply.github.com" // GitHub delivers no mail there
	err := nt.Send(t.Context(), n)
	if err == nil || h.hits.Load() != 1 || len(sl.got()) != 0 {
		t.Fatalf("400: err %v after %d hits; want no retry", err, h.hits.Load())
	}
	n.To.Email = ""
	if err := nt.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if len(smtpd.Messages()) != 0 {
		t.Fatal("mailed an author without a usable address")
	}
	if err := (&github.Notifier{}).Send(t.Context(), n); err != nil {
		t.Fatalf("no channels: %v", err)
	}
}

func TestNotifierHonoursContext(t *testing.T) {
	h := newHookSink(t, 500, 500, 500, 500, 500, 500)
	nt := &github.Notifier{WebhookURL: h.srv.URL, Backoff: time.Hour}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := nt.Send(ctx, failedPR()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}
