package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

type fakeHooks struct {
	secret []byte
	mu     sync.Mutex
	taken  []string // event/delivery/body
	refuse int
	bad    bool
}

func (h *fakeHooks) Secret() []byte { return h.secret }
func (h *fakeHooks) Refused(*http.Request, error) {
	h.mu.Lock()
	h.refuse++
	h.mu.Unlock()
}
func (h *fakeHooks) Take(_ context.Context, event, delivery string, body []byte) (int, any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bad {
		return 0, nil, BadDelivery(errors.New("github: delivery without X-GitHub-Delivery"))
	}
	h.taken = append(h.taken, event+"/"+delivery+"/"+string(body))
	return http.StatusCreated, map[string]string{"job": "j1"}, nil
}

// readCounter counts what a handler read of a body.
type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += k
	return k, err
}

// TestWebhookEdge: the webhook's credential is its signature. A malformed
// signature is refused before a byte of the body is read; a wrong one
// once the body is; only a verified body reaches Take, on the leader or
// relayed to it; the budget of bytes in flight answers 503 (Retry-After)
// or 413 for a body that could never fit.
func TestWebhookEdge(t *testing.T) {
	body := `{"zen":"hi"}`
	post := func(h *harness, sig string, r io.Reader, size int64, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/webhook/github", r)
		req.ContentLength = size
		req.Header.Set(github.HeaderSignature, sig)
		req.Header.Set(github.HeaderEvent, "ping")
		req.Header.Set(github.HeaderDelivery, "d1")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.s.Routes(false).ServeHTTP(rec, req)
		return rec
	}
	secret := []byte("hook-secret")

	h := newHarness(t, fakeLead{leading: true})
	rc := &readCounter{r: strings.NewReader(body)}
	if rec := post(h, "sha1=abc", rc, int64(len(body))); rec.Code != 401 || rc.n != 0 {
		t.Errorf("a malformed signature: got %d after reading %d bytes, want 401 before reading any", rec.Code, rc.n)
	}
	if rec := post(h, githubtest.Sign([]byte("other"), []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 401 {
		t.Errorf("another secret's signature: got %d %s, want 401", rec.Code, rec.Body)
	}
	hooks := h.s.Webhooks.(*fakeHooks)
	if len(hooks.taken) != 0 || hooks.refuse != 2 {
		t.Errorf("after two forgeries: got %d taken, %d refusals logged, want none taken, 2 logged", len(hooks.taken), hooks.refuse)
	}
	if rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 201 || len(hooks.taken) != 1 || hooks.taken[0] != "ping/d1/"+body {
		t.Errorf("a signed delivery: got %d, taken %v, want 201 and the body taken once", rec.Code, hooks.taken)
	}
	hooks.bad = true
	if rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 400 || !strings.Contains(rec.Body.String(), "without X-GitHub-Delivery") {
		t.Errorf("a delivery Take cannot act on: got %d %s, want 400 with its reason", rec.Code, rec.Body)
	}
	if got := h.s.WebhookBudget.InUse(); got != 0 {
		t.Errorf("budget after the requests: got %d bytes held, want 0", got)
	}

	h = newHarness(t, fakeLead{leading: true})
	h.s.WebhookBudget = NewWebhookBudget(8)
	if rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 413 {
		t.Errorf("a body over the whole budget: got %d %s, want 413", rec.Code, rec.Body)
	}
	h.s.WebhookBudget = NewWebhookBudget(64)
	h.s.WebhookBudget.reserve(60) // other deliveries in flight
	if rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 503 || rec.Header().Get("Retry-After") == "" || h.s.WebhookBudget.Busy() != 1 {
		t.Errorf("a full budget: got %d, Retry-After %q, busy %d, want 503 with Retry-After, counted", rec.Code, rec.Header().Get("Retry-After"), h.s.WebhookBudget.Busy())
	}

	h = newHarness(t, fakeLead{leading: true})
	h.s.Webhooks.(*fakeHooks).secret = nil
	if rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body))); rec.Code != 404 {
		t.Errorf("a mesh without webhooks: got %d, want 404", rec.Code)
	}

	// A follower relays the verified body to the leader, whole.
	var relayed struct {
		sync.Mutex
		body, fwd string
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		relayed.Lock()
		relayed.body, relayed.fwd = string(b), r.Header.Get(ForwardedHeader)
		relayed.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	h = newHarness(t, fakeLead{url: up.URL})
	rec := post(h, githubtest.Sign(secret, []byte(body)), strings.NewReader(body), int64(len(body)))
	relayed.Lock()
	defer relayed.Unlock()
	if rec.Code != 201 || relayed.body != body || relayed.fwd != "self" || len(h.s.Webhooks.(*fakeHooks).taken) != 0 {
		t.Errorf("at a follower: got %d, leader saw %q forwarded by %q, want 201, the body whole, forwarded by self, nothing taken here", rec.Code, relayed.body, relayed.fwd)
	}
}
