package meshtls

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Roles a certificate can carry.
const (
	RoleNode   = "node"   // a mesh member: Raft and the peer API, server and client
	RoleClient = "client" // a person or tool: client authentication only
)

// ErrCert marks a certificate or key that is malformed, not signed by the
// mesh CA, or of the wrong role.
var ErrCert = errors.New("meshtls: certificate")

// CA is a mesh certificate authority. Key is nil when only the certificate
// is known (a node that trusts the CA but cannot issue).
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// derivedEpoch fixes the derived CA's validity so that every node computes
// the same certificate, byte for byte.
var (
	derivedNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	derivedNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// DeriveCA computes the CA of a mesh started without one: its Ed25519 key
// is seeded by HMAC-SHA256(seed, label), and Ed25519 signatures are
// deterministic, so every holder of seed gets the same CA.
func DeriveCA(seed []byte) *CA {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("ourci/tls-ca/v1"))
	key := ed25519.NewKeyFromSeed(m.Sum(nil))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "OurCI mesh CA (derived from the cluster secret)"},
		NotBefore:             derivedNotBefore,
		NotAfter:              derivedNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic("meshtls: derive CA: " + err.Error()) // fixed template: cannot fail
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic("meshtls: derive CA: " + err.Error())
	}
	return &CA{Cert: cert, Key: key}
}

// NewCA makes a fresh random CA valid for ttl.
func NewCA(name string, ttl time.Duration) (*CA, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("meshtls: new CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("meshtls: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("meshtls: new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	return new(big.Int).SetBytes(b)
}

// ParseCA reads a CA certificate and, unless keyPEM is empty, its key
// (PKCS#8, or the SEC 1 / PKCS#1 forms openssl writes).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %q is not a CA certificate (it cannot sign certificates)", ErrCert, cert.Subject.CommonName)
	}
	ca := &CA{Cert: cert}
	if len(bytes.TrimSpace(keyPEM)) == 0 {
		return ca, nil
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: the CA key does not belong to the CA certificate", ErrCert)
	}
	ca.Key = key
	return ca, nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE block", ErrCert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCert, err)
	}
	return cert, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("%w: no PEM PRIVATE KEY block", ErrCert)
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrCert, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key of type %T cannot sign", ErrCert, key)
	}
	return s, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the CA key in PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	if ca.Key == nil {
		return nil, fmt.Errorf("meshtls: this CA has no key")
	}
	return keyPEM(ca.Key)
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("meshtls: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Issue makes a certificate for name in role (RoleNode, RoleClient), valid
// for ttl, with a fresh Ed25519 key; both are returned in PEM.
func (ca *CA) Issue(role, name string, ttl time.Duration) (certPEM, keyPEMOut []byte, err error) {
	if ca.Key == nil {
		return nil, nil, fmt.Errorf("meshtls: issue: this CA has no key")
	}
	usage, err := roleUsage(role)
	if err != nil {
		return nil, nil, err
	}
	if !nameRE.MatchString(name) {
		return nil, nil, fmt.Errorf("meshtls: issue: name %q: use letters, digits, '.', '_' and '-' (at most 63)", name)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("meshtls: issue: %w", err)
	}
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		URIs:         []*url.URL{{Scheme: "ourci", Opaque: role + ":" + name}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("meshtls: issue: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func roleUsage(role string) ([]x509.ExtKeyUsage, error) {
	switch role {
	case RoleNode:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	case RoleClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	}
	return nil, fmt.Errorf("meshtls: role %q: want %s or %s", role, RoleNode, RoleClient)
}

// Identity is who a certificate names.
type Identity struct {
	Role string // RoleNode or RoleClient
	Name string
}

// IdentityOf reads the role and name from a certificate's "ourci:ROLE:NAME"
// URI. It does not verify the certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != "ourci" {
			continue
		}
		role, name, ok := strings.Cut(u.Opaque, ":")
		if !ok || (role != RoleNode && role != RoleClient) || !nameRE.MatchString(name) {
			return Identity{}, fmt.Errorf("%w: malformed OurCI identity %q", ErrCert, u.String())
		}
		found = append(found, Identity{Role: role, Name: name})
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: %q carries no OurCI identity (issue it with `ourci-node tls cert`)", ErrCert, cert.Subject.CommonName)
	case 1:
		return found[0], nil
	}
	return Identity{}, fmt.Errorf("%w: %q carries %d OurCI identities, want one", ErrCert, cert.Subject.CommonName, len(found))
}
