package github_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

// GitHub's documented test vector (docs.github.com, "Validating webhook
// deliveries").
const (
	vecSecret = "It's a Secret to Everybody"
	vecBody   = "Hello, World!"
	vecHeader = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestVerifyGitHubVector(t *testing.T) {
	if err := github.Verify([]byte(vecSecret), []byte(vecBody), vecHeader); err != nil {
		t.Fatalf("documented vector refused: %v", err)
	}
	if got := githubtest.Sign([]byte(vecSecret), []byte(vecBody)); got != vecHeader {
		t.Fatalf("githubtest.Sign = %s, want %s", got, vecHeader)
	}
	if err := github.Verify([]byte(vecSecret), []byte(vecBody), strings.ToUpper(vecHeader[:7])+vecHeader[7:]); err == nil {
		t.Fatal("prefix must be lower-case sha256=")
	}
}

func TestVerifyRefuses(t *testing.T) {
	hexSig := strings.TrimPrefix(vecHeader, "sha256=")
	for name, c := range map[string]struct{ secret, body, header string }{
		"wrong secret":     {"It's a Secret to Nobody", vecBody, vecHeader},
		"tampered body":    {vecSecret, "Hello, World?", vecHeader},
		"empty body":       {vecSecret, "", vecHeader},
		"missing header":   {vecSecret, vecBody, ""},
		"sha1":             {vecSecret, vecBody, "sha1=" + hexSig[:40]},
		"no prefix":        {vecSecret, vecBody, hexSig},
		"non-hex":          {vecSecret, vecBody, "sha256=" + strings.Repeat("zz", 32)},
		"too short":        {vecSecret, vecBody, vecHeader[:len(vecHeader)-2]},
		"too long":         {vecSecret, vecBody, vecHeader + "00"},
		"one digit off":    {vecSecret, vecBody, vecHeader[:len(vecHeader)-1] + "f"},
		"space":            {vecSecret, vecBody, " " + vecHeader},
		"empty secret":     {"", vecBody, githubtest.Sign(nil, []byte(vecBody))},
		"prefix only":      {vecSecret, vecBody, "sha256="},
		"two signatures":   {vecSecret, vecBody, vecHeader + "," + vecHeader},
		"secret as header": {vecSecret, vecBody, vecSecret},
	} {
		t.Run(name, func(t *testing.T) {
			err := github.Verify([]byte(c.secret), []byte(c.body), c.header)
			if !errors.Is(err, github.ErrSignature) {
				t.Fatalf("Verify = %v, want ErrSignature", err)
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
}

// failReader fails the test if the body is read at all.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("body was read")
	return 0, io.EOF
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReadDelivery(t *testing.T) {
	secret := []byte("s3cret")
	sha := strings.Repeat("ab", 20)
	body := githubtest.PullRequest("opened", "acme", "widget", 7, sha, "feature", false)
	req, _ := githubtest.NewWebhookRequest("http://ci/webhook/github", secret, "pull_request", "d-1", body)
	e, raw, err := github.ReadDelivery(req, secret)
	if err != nil || e.PR != 7 || e.HeadSHA != sha || string(raw) != string(body) {
		t.Fatalf("ReadDelivery = %+v, %d bytes, %v", e, len(raw), err)
	}

	t.Run("forged", func(t *testing.T) {
		req, _ := githubtest.NewWebhookRequest("http://ci/", []byte("other"), "pull_request", "d-2", body)
		_, _, err := github.ReadDelivery(req, secret)
		if github.HTTPStatus(err) != http.StatusUnauthorized {
			t.Fatalf("forged: %v → %d", err, github.HTTPStatus(err))
		}
	})
	t.Run("signed garbage", func(t *testing.T) {
		req, _ := githubtest.NewWebhookRequest("http://ci/", secret, "push", "d-3", []byte("{not json"))
		_, _, err := github.ReadDelivery(req, secret)
		if !errors.Is(err, github.ErrPayload) || github.HTTPStatus(err) != http.StatusBadRequest {
			t.Fatalf("garbage: %v", err)
		}
	})
	t.Run("declared too large is not read", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/", failReader{t})
		req.ContentLength = github.MaxBody + 1
		_, _, err := github.ReadDelivery(req, secret)
		if !errors.Is(err, github.ErrTooLarge) || github.HTTPStatus(err) != http.StatusRequestEntityTooLarge {
			t.Fatalf("too large: %v", err)
		}
	})
	t.Run("streamed too large stops at the cap", func(t *testing.T) {
		src := &countingReader{r: zeros{}}
		req := httptest.NewRequest(http.MethodPost, "/", src)
		req.ContentLength = -1
		_, _, err := github.ReadDelivery(req, secret)
		if !errors.Is(err, github.ErrTooLarge) {
			t.Fatalf("too large: %v", err)
		}
		if src.n > github.MaxBody+64<<10 {
			t.Fatalf("read %d bytes of an endless body", src.n)
		}
	})
	if github.HTTPStatus(nil) != http.StatusOK || github.HTTPStatus(errors.New("x")) != http.StatusInternalServerError {
		t.Fatal("HTTPStatus of nil or other errors")
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
