package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

var (
	keyOnce sync.Once
	keys    [2]*rsa.PrivateKey
)

// testKeys are two RSA keys, made once per test binary.
func testKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
	})
	return keys[0], keys[1]
}

// fakeClock is a clock both the App and the stand-in read.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"

// appServer is a stand-in with App 4242 installed on octo/fw as 77 and a
// shared fake clock.
func appServer(t *testing.T) (*githubtest.Server, *github.App, *fakeClock) {
	t.Helper()
	key, _ := testKeys(t)
	srv := githubtest.New()
	t.Cleanup(srv.Close)
	clk := &fakeClock{now: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
	srv.SetApp(4242, &key.PublicKey)
	srv.Install("octo", "fw", 77)
	srv.SetClock(clk.Now)
	app, err := github.NewApp(4242, key, srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	app.Now = clk.Now
	return srv, app, clk
}

func TestAppJWTClaims(t *testing.T) {
	_, app, clk := appServer(t)
	key, _ := testKeys(t)
	s, err := app.JWT()
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(s, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clk.Now), jwt.WithIssuer("4242"))
	if err != nil {
		t.Fatalf("the app JWT does not verify: %v", err)
	}
	now := clk.Now()
	if got := claims.IssuedAt.Time; !got.Equal(now.Add(-60 * time.Second)) {
		t.Errorf("iat: got %v, want 60s before %v", got, now)
	}
	if got := claims.ExpiresAt.Time; got.After(now.Add(10*time.Minute)) || got.Before(now.Add(5*time.Minute)) {
		t.Errorf("exp: got %v, want within 10 minutes of %v", got, now)
	}
}

func TestAppInstallationTokenForStatuses(t *testing.T) {
	srv, app, _ := appServer(t)
	st := github.NewAppStatuses(app)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if err := st.Set(ctx, "octo", "fw", sha, "pending", "https://ci.example.com/jobs/j", "running"); err != nil {
			t.Fatal(err)
		}
	}
	got := srv.Statuses("octo", "fw", sha)
	if len(got) != 3 || !strings.HasPrefix(got[0].Authorization, "token ghs_") || got[2].Authorization != got[0].Authorization {
		t.Fatalf("statuses: got %+v, want 3 posted with one installation token", got)
	}
	if n := srv.TokensIssued(); n != 1 {
		t.Errorf("tokens issued: got %d, want 1 (cached)", n)
	}
	// Not installed on the repository: a permanent error.
	err := st.Set(ctx, "octo", "other", sha, "pending", "", "running")
	if !errors.Is(err, github.ErrPermanent) || !strings.Contains(err.Error(), "installation") {
		t.Errorf("repository without the App: got %v, want a permanent error about the installation", err)
	}
}

func TestAppTokenCacheAndRefresh(t *testing.T) {
	srv, app, clk := appServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := app.Token(ctx, "octo", "fw")
	if err != nil {
		t.Fatal(err)
	}
	// Tokens live an hour: 54 minutes on (6 left) the cached one serves.
	clk.Advance(54 * time.Minute)
	if tok, _ := app.Token(ctx, "octo", "fw"); tok != first || srv.TokensIssued() != 1 {
		t.Fatalf("at 54 minutes: got a new token (%d issued), want the cached one", srv.TokensIssued())
	}
	// 56 minutes on (4 left, under the 5-minute margin): a new one.
	clk.Advance(2 * time.Minute)
	second, err := app.Token(ctx, "octo", "fw")
	if err != nil || second == first || srv.TokensIssued() != 2 {
		t.Fatalf("at 56 minutes: got err %v, same token %v, %d issued; want a second token", err, second == first, srv.TokensIssued())
	}
	// Revoked early: the 401 drops it, and the request goes again with a new one.
	srv.RevokeTokens()
	if err := github.NewAppStatuses(app).Set(ctx, "octo", "fw", sha, "success", "", "ok"); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if n := srv.TokensIssued(); n != 3 {
		t.Errorf("tokens issued after a 401: got %d, want 3", n)
	}
	if got := srv.Statuses("octo", "fw", sha); len(got) != 1 || got[0].State != "success" {
		t.Errorf("statuses: got %+v, want one success", got)
	}
}

func TestAppJWTRefused(t *testing.T) {
	good, other := testKeys(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		id   int64
		key  *rsa.PrivateKey
		skew time.Duration // the app's clock minus the server's
		want string
	}{
		{"bad signature", 4242, other, 0, "could not be decoded"},
		{"expired", 4242, good, -15 * time.Minute, "Expiration time"},
		{"wrong issuer", 4343, good, 0, "Integration not found"},
		{"issued in the future", 4242, good, 5 * time.Minute, "Issued at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := githubtest.New()
			defer srv.Close()
			srv.SetApp(4242, &good.PublicKey)
			srv.Install("octo", "fw", 77)
			app, err := github.NewApp(tc.id, tc.key, srv.URL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			app.Now = func() time.Time { return time.Now().Add(tc.skew) }
			_, err = app.Token(ctx, "octo", "fw")
			if !errors.Is(err, github.ErrPermanent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a permanent error saying %q", err, tc.want)
			}
			if srv.TokensIssued() != 0 {
				t.Errorf("a token was issued")
			}
		})
	}
}

func TestLoadAppKey(t *testing.T) {
	key, _ := testKeys(t)
	dir := t.TempDir()
	pkcs1 := filepath.Join(dir, "app.pem")
	os.WriteFile(pkcs1, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pkcs8 := filepath.Join(dir, "app8.pem")
	os.WriteFile(pkcs8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0IGJ5dGVz\n-----END RSA PRIVATE KEY-----\n"), 0o600)
	for _, p := range []string{pkcs1, pkcs8} {
		k, err := github.LoadAppKey(p)
		if err != nil || !k.Equal(key) {
			t.Errorf("%s: got %v, want the key", p, err)
		}
	}
	for _, p := range []string{junk, filepath.Join(dir, "missing.pem")} {
		_, err := github.LoadAppKey(p)
		if !errors.Is(err, github.ErrAppKey) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("%s: got %v, want ErrAppKey without the file's bytes", p, err)
		}
	}
	if _, err := github.ParseAppID("12x"); err == nil {
		t.Error("app id 12x: no error")
	}
}
