package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
	"github.com/ourci/ourci/node/github"
)

// GitHub's webhook, POST /webhook/github, on any node, no token: the
// delivery's signature is its credential. The signature header's form is
// checked before a byte of the body is read, and the HMAC while it is
// read, into a buffer reserved from the node's budget of webhook bytes in
// flight (503 with Retry-After past it). Only a verified body goes on: the
// leader acts on it (Webhooks.Take); a follower relays the verified body
// to the leader, which checks it again. The answer never waits on a build.
//
// The budget applies on the public listener, where anyone may send. On
// the peer port only nodes of the mesh get in, and they relay only bodies
// they verified under their own budget, held until the relay is answered.

// Webhooks acts on verified deliveries.
type Webhooks interface {
	// Secret is the webhook secret (nil: this mesh takes no webhooks).
	Secret() []byte
	// Refused logs a refused delivery (rate-limited per client).
	Refused(r *http.Request, err error)
	// Take acts on a verified delivery, on the leader: the answer's
	// status and body (an error is a bad request or a failed write).
	Take(ctx context.Context, event, delivery string, body []byte) (int, any, error)
}

// DefaultWebhookInflight is the default cap of webhook body bytes a node
// holds while it reads and verifies them: two bodies of GitHub's largest
// (25 MB) at once, or thousands of ordinary ones (a pull_request delivery
// is some tens of kilobytes).
const DefaultWebhookInflight = 64 << 20

// WebhookBudget is the cap of webhook body bytes in flight on the public
// listener. A request reserves its buffer as it grows, from the first
// byte read until its answer is written (a follower's relay included, so
// what it relays to the leader is bounded by its own cap).
type WebhookBudget struct {
	max  int64
	mu   sync.Mutex
	used int64
	busy atomic.Uint64 // webhooks answered 503 for the cap
}

// NewWebhookBudget is a budget of max bytes.
func NewWebhookBudget(max int64) *WebhookBudget { return &WebhookBudget{max: max} }

// reserve takes k bytes of the budget, or reports that they are not free.
func (b *WebhookBudget) reserve(k int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+k > b.max {
		return false
	}
	b.used += k
	return true
}

func (b *WebhookBudget) release(k int64) {
	b.mu.Lock()
	b.used -= k
	b.mu.Unlock()
}

// InUse is the bytes held now.
func (b *WebhookBudget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Busy is how many deliveries were answered 503 for the cap.
func (b *WebhookBudget) Busy() uint64 { return b.busy.Load() }

func (s *Server) webhookRoute(peerPort bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleWebhook(w, r, peerPort) }
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, peerPort bool) {
	secret := s.Webhooks.Secret()
	if secret == nil {
		WriteError(w, http.StatusNotFound, api.CodeNotFound, errors.New("this mesh takes no GitHub webhooks (--github-secret-file)"))
		return
	}
	if r.ContentLength > github.MaxBody {
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeBadRequest, fmt.Errorf("webhook body over %d bytes", github.MaxBody))
		return
	}
	sig, err := github.ParseSignature(secret, r.Header.Get(github.HeaderSignature))
	if err != nil {
		s.Webhooks.Refused(r, err)
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, err)
		return
	}
	b := s.WebhookBudget
	grow := func(int64) bool { return true }
	if !peerPort {
		var held int64
		defer func() { b.release(held) }()
		grow = func(k int64) bool {
			if held+k > b.max || !b.reserve(k) {
				return false
			}
			held += k
			return true
		}
	}
	body, err := github.ReadSigned(r.Body, r.ContentLength, secret, sig, grow)
	switch {
	case errors.Is(err, github.ErrBusy) && r.ContentLength > b.max:
		WriteError(w, http.StatusRequestEntityTooLarge, api.CodeBadRequest, fmt.Errorf("webhook body of %d bytes: over this node's cap of webhook bytes in flight (%d)", r.ContentLength, b.max))
		return
	case errors.Is(err, github.ErrBusy):
		b.busy.Add(1)
		s.Webhooks.Refused(r, err)
		w.Header().Set("Retry-After", "5")
		WriteError(w, http.StatusServiceUnavailable, api.CodeBusy, fmt.Errorf("%w: at most %d bytes of webhooks are read at once on this node; retry", err, b.max))
		return
	case errors.Is(err, github.ErrSignature):
		s.Webhooks.Refused(r, err)
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, err)
		return
	case err != nil:
		WriteError(w, github.HTTPStatus(err), api.CodeBadRequest, err)
		return
	}
	take := func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
		code, answer, err := s.Webhooks.Take(r.Context(), r.Header.Get(github.HeaderEvent), r.Header.Get(github.HeaderDelivery), body)
		var bad *badDelivery
		switch {
		case errors.As(err, &bad):
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, bad.err)
		case err != nil:
			WriteLedgerError(w, err)
		default:
			WriteJSON(w, code, answer)
		}
	}
	if !s.Lead.Dispatching() {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		s.LeaderOnly(take)(w, r, auth.Principal{})
		return
	}
	take(w, r, auth.Principal{})
}

// BadDelivery marks err as a delivery Take cannot act on: the answer is
// 400 with err's message.
func BadDelivery(err error) error { return &badDelivery{err} }

type badDelivery struct{ err error }

func (b *badDelivery) Error() string { return b.err.Error() }
func (b *badDelivery) Unwrap() error { return b.err }
