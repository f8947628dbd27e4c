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
	want, err := ParseSignature(secret, header)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return checkMAC(mac.Sum(nil), want)
}

// ParseSignature checks the form of an X-Hub-Signature-256 header, and
// that there is a secret to check it with, before a byte of the body is
// read; it returns the signature's bytes. Errors wrap ErrSignature.
func ParseSignature(secret []byte, header string) ([]byte, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	if header == "" {
		return nil, fmt.Errorf("%w: missing %s header", ErrSignature, HeaderSignature)
	}
	hexSig, ok := strings.CutPrefix(header, sigPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: %s must start with %q", ErrSignature, HeaderSignature, sigPrefix)
	}
	if len(hexSig) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: want %d hex digits after %q", ErrSignature, 2*sha256.Size, sigPrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrSignature)
	}
	return got, nil
}

func checkMAC(sum, want []byte) error {
	if !hmac.Equal(want, sum) {
		return fmt.Errorf("%w: does not match the body", ErrSignature)
	}
	return nil
}

// ErrBusy marks a webhook refused because the bytes its node may hold
// unverified are taken by others in flight; retry later (503).
var ErrBusy = errors.New("github: too many webhook bytes in flight")

// firstChunk is the buffer a body of unknown or larger size starts with;
// it doubles from there as bytes arrive.
const firstChunk = 64 << 10

// ReadSigned reads a webhook body of declared size (-1: unknown) into a
// buffer that grows as bytes arrive, at most MaxBody, computing the
// HMAC-SHA256 while it reads, and checks it against sig (ParseSignature).
// Before the buffer grows by k bytes it asks grow(k): false stops the read
// with ErrBusy; the caller releases what grow granted once it is done with
// the body, whatever the outcome. A size over MaxBody is refused before a
// byte is read (ErrTooLarge); so is a body that turns out longer.
func ReadSigned(body io.Reader, size int64, secret, sig []byte, grow func(k int64) bool) ([]byte, error) {
	if size > MaxBody {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, size, MaxBody)
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	mac := hmac.New(sha256.New, secret)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxBody {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxBody)
			}
			next := int64(max(2*cap(buf), firstChunk))
			if size >= 0 {
				if int64(cap(buf)) > size {
					return nil, fmt.Errorf("%w: longer than its declared %d bytes", ErrTooLarge, size)
				}
				// Room for the declared bytes and one more, to see the end.
				next = min(next, size+1)
			}
			next = min(next, MaxBody+1)
			if !grow(next - int64(cap(buf))) {
				return nil, ErrBusy
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		k, err := body.Read(buf[len(buf):cap(buf)])
		mac.Write(buf[len(buf) : len(buf)+k])
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("github: read webhook body: %w", err)
		}
	}
	if len(buf) > MaxBody {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxBody)
	}
	if size >= 0 && int64(len(buf)) < size {
		return nil, fmt.Errorf("github: read webhook body: %d of its declared %d bytes: %w", len(buf), size, io.ErrUnexpectedEOF)
	}
	if err := checkMAC(mac.Sum(nil), sig); err != nil {
		return nil, err
	}
	return buf, nil
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

// HTTPStatus is the response code for an error from ReadDelivery or
// ReadSigned: 401 for a bad signature, 413 for a body too large, 400 for a
// bad payload or a body cut short, 503 when busy, 500 for anything else, 200 for nil.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrSignature):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrPayload), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
