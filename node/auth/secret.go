package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The cluster secret is 32 random bytes, kept hex-encoded in a file readable
// only by its owner. Every key and token is derived from it by HMAC-SHA256
// with a distinct label, so no channel ever carries the secret itself.
const (
	secretPrefix = "ourci-secret-v1:"
	labelGossip  = "ourci/gossip/v1"
	labelTLS     = "ourci/tls/v1"
	labelCluster = "ourci/api/cluster/v1"
	labelTask    = "ourci/api/task/v1"
	labelBlob    = "ourci/api/blob/v1"

	labelOperator = "ourci/api/operator/v1"

	clusterTokenPrefix  = "ourci-c1."
	taskTokenPrefix     = "ourci-t1."
	operatorTokenPrefix = "ourci-o1."
	blobTokenPrefix     = "ourci-b1."
)

// TokenPrefixes are the prefixes of every credential OurCI makes; the task
// log masker treats anything that starts with one as a credential.
var TokenPrefixes = []string{clusterTokenPrefix, taskTokenPrefix, operatorTokenPrefix, blobTokenPrefix, secretPrefix}

// Operator roles, for people and scripts (ourci-node token create).
const (
	RoleRead    = "read"    // status, jobs, logs, blobs, the web UI
	RoleOperate = "operate" // read, plus spawn, cancel, approve, blob put
	RoleMetrics = "metrics" // GET /metrics, nothing else (Prometheus)
)

// ErrSecret marks a missing or malformed cluster secret.
var ErrSecret = errors.New("auth: cluster secret")

// Secret is the mesh's shared secret.
type Secret struct{ b []byte }

// NewSecret makes a fresh random secret.
func NewSecret() Secret {
	b := make([]byte, 32)
	rand.Read(b)
	return Secret{b: b}
}

// IsZero reports whether s is the zero Secret (none was given).
func (s Secret) IsZero() bool { return s.b == nil }

// String is the secret's file form (what `ourci-node keygen` prints).
func (s Secret) String() string { return secretPrefix + hex.EncodeToString(s.b) }

// ParseSecret reads the file form.
func ParseSecret(text string) (Secret, error) {
	text = strings.TrimSpace(text)
	h, ok := strings.CutPrefix(text, secretPrefix)
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) < 32 {
		return Secret{}, fmt.Errorf("%w: not an OurCI secret (want %s and 64 hex digits, as `ourci-node keygen` prints)", ErrSecret, secretPrefix)
	}
	return Secret{b: b}, nil
}

// LoadSecret reads a secret file.
func LoadSecret(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	s, err := ParseSecret(string(b))
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// WriteSecret stores s at path (mode 0600), refusing to overwrite.
func WriteSecret(path string, s Secret) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSecret, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSecret, err)
	}
	if _, err := f.WriteString(s.String() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("%w: %w", ErrSecret, err)
	}
	return f.Close()
}

func (s Secret) derive(label string, parts ...string) []byte {
	m := hmac.New(sha256.New, s.b)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// GossipKey is the AES-256 key that encrypts gossip.
func (s Secret) GossipKey() []byte { return s.derive(labelGossip) }

// TLSSeed seeds the mesh CA of a mesh started without its own
// (meshtls.DeriveCA): every holder of the secret derives the same CA.
func (s Secret) TLSSeed() []byte { return s.derive(labelTLS) }

// MeshID names the mesh without revealing the secret (container labels).
func (s Secret) MeshID() string { return hex.EncodeToString(s.derive("ourci/mesh-id/v1"))[:16] }

// ClusterToken is the full-access API token for operators and nodes.
func (s Secret) ClusterToken() string {
	return clusterTokenPrefix + hex.EncodeToString(s.derive(labelCluster))
}

// TaskToken is the token a running attempt gets: it names the task and
// attempt and is valid only while that attempt is the task's live one.
func (s Secret) TaskToken(task string, attempt int) string {
	a := strconv.Itoa(attempt)
	return taskTokenPrefix + task + "." + a + "." + hex.EncodeToString(s.derive(labelTask, task, a))
}

// BlobToken is the capability in a running attempt's BLOB_URL: it names
// the job, task and attempt, and reads that job's blobs through the
// BLOB_URL route only, while the attempt is live. It cannot spawn or read
// anything else, so a BLOB_URL that leaks (into a log, a shell history, a
// proxy's access log) gives away no more than the job's own artifacts.
func (s Secret) BlobToken(job, task string, attempt int) string {
	a := strconv.Itoa(attempt)
	return blobTokenPrefix + job + "." + task + "." + a + "." + hex.EncodeToString(s.derive(labelBlob, job, task, a))
}

// OperatorToken makes a token with a role (RoleRead, RoleOperate,
// RoleMetrics) that expires at expires (zero: never). Tokens are
// stateless: they can be revoked only by changing the cluster secret.
func (s Secret) OperatorToken(role string, expires time.Time) (string, error) {
	if role != RoleRead && role != RoleOperate && role != RoleMetrics {
		return "", fmt.Errorf("auth: token role %q: want %s, %s or %s", role, RoleRead, RoleOperate, RoleMetrics)
	}
	exp := "0"
	if !expires.IsZero() {
		exp = strconv.FormatInt(expires.Unix(), 10)
	}
	nonce := make([]byte, 6)
	rand.Read(nonce)
	n := hex.EncodeToString(nonce)
	return operatorTokenPrefix + role + "." + exp + "." + n + "." + hex.EncodeToString(s.derive(labelOperator, role, exp, n)), nil
}

// Principal is who a request comes from.
type Principal struct {
	Cluster bool   // the cluster token: full access (operators' admin, node to node)
	Role    string // an operator token: RoleRead, RoleOperate or RoleMetrics
	Task    string // a task token or a blob capability: this task...
	Attempt int    // ...in this attempt
	// Job is the job a blob capability names; for a task token, auth sets
	// it from the ledger (Authenticate leaves it empty).
	Job  string
	Blob bool // a blob capability (BLOB_URL): the blobs of Job, nothing else
}

// IsTask reports whether p is a task's token (not its blob capability).
func (p Principal) IsTask() bool { return p.Task != "" && !p.Blob }

// May reports whether p may act with role: a cluster token may do
// anything; an operate token may read; a task token's rights are checked
// by each handler (own job only); a metrics token and a blob capability
// have none of these (the /metrics and BLOB_URL routes admit them).
func (p Principal) May(role string) bool {
	switch {
	case p.Cluster:
		return true
	case p.Blob || p.IsTask():
		return false
	case role == RoleRead:
		return p.Role == RoleRead || p.Role == RoleOperate
	case role == RoleOperate:
		return p.Role == RoleOperate
	}
	return false
}

// ErrToken marks a missing or invalid API token.
var ErrToken = errors.New("auth: invalid token")

// Authenticate checks a bearer token's signature. A task token still has
// to be checked against the ledger (is the attempt live?) by the caller.
func (s Secret) Authenticate(token string) (Principal, error) {
	switch {
	case strings.HasPrefix(token, clusterTokenPrefix):
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.ClusterToken())) == 1 {
			return Principal{Cluster: true}, nil
		}
	case strings.HasPrefix(token, operatorTokenPrefix):
		parts := strings.Split(strings.TrimPrefix(token, operatorTokenPrefix), ".")
		if len(parts) != 4 {
			break
		}
		role, exp, nonce, mac := parts[0], parts[1], parts[2], parts[3]
		want := hex.EncodeToString(s.derive(labelOperator, role, exp, nonce))
		if subtle.ConstantTimeCompare([]byte(mac), []byte(want)) != 1 {
			break
		}
		if role != RoleRead && role != RoleOperate && role != RoleMetrics {
			break
		}
		if e, err := strconv.ParseInt(exp, 10, 64); err != nil || (e != 0 && time.Now().Unix() >= e) {
			return Principal{}, fmt.Errorf("%w: the token expired", ErrToken)
		}
		return Principal{Role: role}, nil
	case strings.HasPrefix(token, taskTokenPrefix):
		rest := strings.TrimPrefix(token, taskTokenPrefix)
		parts := strings.Split(rest, ".")
		if len(parts) != 3 || parts[0] == "" {
			break
		}
		attempt, err := strconv.Atoi(parts[1])
		if err != nil || attempt < 1 {
			break
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.TaskToken(parts[0], attempt))) == 1 {
			return Principal{Task: parts[0], Attempt: attempt}, nil
		}
	case strings.HasPrefix(token, blobTokenPrefix):
		parts := strings.Split(strings.TrimPrefix(token, blobTokenPrefix), ".")
		if len(parts) != 4 || parts[0] == "" || parts[1] == "" {
			break
		}
		attempt, err := strconv.Atoi(parts[2])
		if err != nil || attempt < 1 {
			break
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.BlobToken(parts[0], parts[1], attempt))) == 1 {
			return Principal{Job: parts[0], Task: parts[1], Attempt: attempt, Blob: true}, nil
		}
	}
	return Principal{}, ErrToken
}
