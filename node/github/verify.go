package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody is the largest webhook body accepted (25 MB, GitHub's own cap).
const MaxBody = 25 << 20

// Webhook request headers GitHub sends.
const (
	HeaderSignature = "X-Hub-Signature-256"
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
)

var (
	// ErrSignature marks a webhook whose X-Hub-Signature-256 is missing,
	// malformed or wrong (or a server with no webhook secret).
	ErrSignature = errors.New("github: webhook signature")
	// ErrTooLarge marks a webhook body over MaxBody.
	ErrTooLarge = errors.New("github: webhook body too large")
	// ErrPayload marks a verified delivery that cannot be decoded or lacks a
	// field OurCI needs.
	ErrPayload = errors.New("github: webhook payload")
)

const sigPrefix = "sha256="

// Verify checks GitHub's X-Hub-Signature-256 header ("sha256=<hex>") over
// body with HMAC-SHA256 and a constant-time compare. Missing, malformed or
// wrong → an error wrapping ErrSignature. An empty secret verifies nothing
// (anyone could sign with it) and is refused too. It never parses the body.
func Verify(secret []byte, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	if header == "" {
		return fmt.Errorf("%w: missing %s header", ErrSignature, HeaderSignature)
	}
	hexSig, ok := strings.CutPrefix(header, sigPrefix)
	if !ok {
		return fmt.Errorf("%w: %s must start with %q", ErrSignature, HeaderSignature, sigPrefix)
	}
	if len(hexSig) != 2*sha256.Size {
		return fmt.Errorf("%w: want %d hex digits after %q", ErrSignature, 2*sha256.Size, sigPrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: not hex", ErrSignature)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: does not match the body", ErrSignature)
	}
	return nil
}

// ReadBody reads a webhook request's body, refusing (ErrTooLarge) one whose
// Content-Length is over MaxBody before reading a byte, and stopping at
// MaxBody+1 bytes otherwise, so an oversized body is never held whole.
func ReadBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBody {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, r.ContentLength, MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("github: read webhook body: %w", err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxBody)
	}
	return body, nil
}

// ReadDelivery is the whole intake of one webhook request: read the body
// (ReadBody), verify its signature (Verify) and only then decode it
// (Parse). The raw body is returned as well, for a follower that relays the
// request to the leader unchanged. Map its error to a response with
// HTTPStatus.
func ReadDelivery(r *http.Request, secret []byte) (Event, []byte, error) {
	body, err := ReadBody(r)
	if err != nil {
		return Event{}, nil, err
	}
	if err := Verify(secret, body, r.Header.Get(HeaderSignature)); err != nil {
		return Event{}, nil, err
	}
	e, err := Parse(r.Header.Get(HeaderEvent), r.Header.Get(HeaderDelivery), body)
	if err != nil {
		return Event{}, nil, err
	}
	return e, body, nil
}

// HTTPStatus is the response code for an error from ReadDelivery: 401 for a
// bad signature, 413 for a body too large, 400 for a bad payload, 500 for
// anything else, 200 for nil.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrSignature):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrPayload):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}
