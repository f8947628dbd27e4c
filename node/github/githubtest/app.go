package githubtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The GitHub App side of the stand-in: app JWTs verified against the
// app's public key, installations per repository, installation tokens with
// an expiry, as GitHub documents them
// (docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app).

// appState is what SetApp and Install configure.
type appState struct {
	id       int64
	pub      *rsa.PublicKey
	installs map[string]int64     // "owner/repo" (lower case) → installation
	tokens   map[string]issuedTok // token → what it is for
	ttl      time.Duration
	issued   int
}

type issuedTok struct {
	installation int64
	expires      time.Time
	revoked      bool
}

// SetApp makes the server a GitHub App's API: /app/... and
// /repos/{owner}/{repo}/installation take only an RS256 JWT with iss id,
// signed by pub's key, unexpired and living at most 10 minutes; every other
// request takes an unexpired installation token for its repository (or
// the token of RequireToken, a personal token).
func (s *Server) SetApp(id int64, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app = &appState{id: id, pub: pub, installs: map[string]int64{}, tokens: map[string]issuedTok{}, ttl: time.Hour}
}

// Install installs the App on owner/repo as installation id.
func (s *Server) Install(owner, repo string, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app.installs[strings.ToLower(owner+"/"+repo)] = id
}

// SetTokenTTL sets how long installation tokens issued from now on live
// (GitHub: an hour).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app.ttl = d
}

// SetClock sets the server's clock (JWT checks, token expiry); default
// time.Now.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// RevokeTokens makes every installation token issued so far answer 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.app.tokens {
		t.revoked = true
		s.app.tokens[k] = t
	}
}

// TokensIssued is how many installation tokens the server issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil {
		return 0
	}
	return s.app.issued
}

func (s *Server) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// appAuth checks a request's credentials in App mode (s.mu held); "" is
// admitted, else GitHub's message for the 401.
func (s *Server) appAuth(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if jwtPath(r.URL.Path) {
		tok, ok := strings.CutPrefix(a, "Bearer ")
		if !ok {
			return "A JSON web token could not be decoded"
		}
		return s.verifyJWT(tok)
	}
	tok, ok := strings.CutPrefix(a, "token ")
	if !ok {
		tok, _ = strings.CutPrefix(a, "Bearer ")
	}
	if s.token != "" && tok == s.token {
		return ""
	}
	it, ok := s.app.tokens[tok]
	switch {
	case !ok, it.revoked:
		return "Bad credentials"
	case !s.clock().Before(it.expires):
		return "Bad credentials" // GitHub answers an expired token so
	}
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	if p, ok := strings.CutPrefix(r.URL.Path, "/repos/"); ok {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) >= 2 {
			owner, repo = parts[0], parts[1]
		}
	}
	if s.app.installs[strings.ToLower(owner+"/"+repo)] != it.installation {
		return "Resource not accessible by integration"
	}
	return ""
}

func jwtPath(p string) bool {
	if strings.HasPrefix(p, "/app/") || p == "/app" {
		return true
	}
	return strings.HasPrefix(p, "/repos/") && strings.HasSuffix(p, "/installation") && strings.Count(p, "/") == 4
}

// verifyJWT checks an app JWT as GitHub does (s.mu held).
func (s *Server) verifyJWT(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "A JSON web token could not be decoded"
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat *float64        `json:"iat"`
		Exp *float64        `json:"exp"`
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	c, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(h, &hdr) != nil || json.Unmarshal(c, &claims) != nil {
		return "A JSON web token could not be decoded"
	}
	if hdr.Alg != "RS256" {
		return "A JSON web token could not be decoded"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.app.pub, crypto.SHA256, sum[:], sig) != nil {
		return "A JSON web token could not be decoded"
	}
	iss := strings.Trim(string(claims.Iss), `"`)
	if iss != strconv.FormatInt(s.app.id, 10) {
		return "Integration not found"
	}
	now := float64(s.clock().Unix())
	switch {
	case claims.Iat == nil || *claims.Iat > now+60:
		return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued."
	case claims.Exp == nil || *claims.Exp <= now:
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires."
	case *claims.Exp-*claims.Iat > 600+1 || *claims.Exp > now+600+1:
		return "'Expiration time' claim ('exp') is too far in the future."
	}
	return ""
}

// getInstallation is GET /repos/{owner}/{repo}/installation.
func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	id, ok := s.app.installs[strings.ToLower(owner+"/"+repo)]
	appID := s.app.id
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app"}`)
		return
	}
	api := "http://" + r.Host
	body, _ := json.Marshal(map[string]any{
		"id":                   id,
		"account":              user(owner, fakeID(owner)),
		"access_tokens_url":    fmt.Sprintf("%s/app/installations/%d/access_tokens", api, id),
		"repositories_url":     api + "/installation/repositories",
		"html_url":             fmt.Sprintf("https://github.com/settings/installations/%d", id),
		"app_id":               appID,
		"target_id":            fakeID(owner),
		"target_type":          "Organization",
		"permissions":          map[string]string{"checks": "write", "statuses": "write", "contents": "read", "metadata": "read"},
		"events":               []string{"check_run", "check_suite", "merge_group", "pull_request", "push"},
		"repository_selection": "selected",
		"created_at":           "2024-01-02T03:04:05Z",
		"updated_at":           "2024-01-02T03:04:05Z",
	})
	writeJSON(w, http.StatusOK, string(body))
}

// createToken is POST /app/installations/{id}/access_tokens.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	known := false
	for _, v := range s.app.installs {
		known = known || v == id
	}
	if err != nil || !known {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"}`)
		return
	}
	b := make([]byte, 18)
	rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	exp := s.clock().Add(s.app.ttl).UTC().Truncate(time.Second)
	s.app.tokens[tok] = issuedTok{installation: id, expires: exp}
	s.app.issued++
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"token":                tok,
		"expires_at":           exp.Format(time.RFC3339),
		"permissions":          map[string]string{"checks": "write", "statuses": "write", "contents": "read", "metadata": "read"},
		"repository_selection": "selected",
	})
	writeJSON(w, http.StatusCreated, string(body))
}
