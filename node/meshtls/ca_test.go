package meshtls_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/meshtls"
)

// ---- helpers shared by the meshtls tests ----

func newCA(t testing.TB, name string) *meshtls.CA {
	t.Helper()
	ca, err := meshtls.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA(%q): got error %v, want nil", name, err)
	}
	return ca
}

func issue(t testing.TB, ca *meshtls.CA, role, name string, ttl time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(role, name, ttl)
	if err != nil {
		t.Fatalf("Issue(%s, %s): got error %v, want nil", role, name, err)
	}
	return certPEM, keyPEM
}

func newPeer(t testing.TB, ca *meshtls.CA, name string) *meshtls.Peer {
	t.Helper()
	certPEM, keyPEM := issue(t, ca, meshtls.RoleNode, name, time.Hour)
	p, err := meshtls.NewPeer(ca, certPEM, keyPEM)
	if err != nil {
		t.Fatalf("NewPeer(%s): got error %v, want nil", name, err)
	}
	return p
}

// keyPair is a certificate and key as tls.Dial presents them.
func keyPair(t testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("tls.X509KeyPair: got error %v, want nil", err)
	}
	return c
}

func issuedPair(t testing.TB, ca *meshtls.CA, role, name string, ttl time.Duration) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := issue(t, ca, role, name, ttl)
	return keyPair(t, certPEM, keyPEM)
}

func craftedPair(t testing.TB, ca *meshtls.CA, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := craft(t, ca, tmpl)
	return keyPair(t, certPEM, keyPEM)
}

func certOf(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("decode certificate PEM: got block %v, want a CERTIFICATE", block)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: got error %v, want nil", err)
	}
	return c
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalPKCS8PrivateKey: got error %v, want nil", err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func uri(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// craft signs tmpl with ca's key (self-signed when ca is nil) for a fresh
// Ed25519 key, filling in what the template leaves unset; it returns the
// certificate and key in PEM.
func craft(t testing.TB, ca *meshtls.CA, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ed25519.GenerateKey: %v", err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("x509.CreateCertificate: got error %v, want nil", err)
	}
	return pemBlock("CERTIFICATE", der), pkcs8PEM(t, key)
}

// leafTemplate is a certificate the way Issue makes one, for tests to
// alter before craft signs it.
func leafTemplate(name string, uris ...string) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		tmpl.URIs = append(tmpl.URIs, uri(s))
	}
	return tmpl
}

// caTemplate is a self-signed CA certificate template.
func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
}

// opensslCA makes a CA whose key is ECDSA or RSA and returns its
// certificate and key PEM, the key in the form openssl writes it ("EC
// PRIVATE KEY" SEC 1, "RSA PRIVATE KEY" PKCS#1).
func opensslCA(t testing.TB, kind string) (certPEM, keyPEM []byte, key crypto.Signer) {
	t.Helper()
	var keyDER []byte
	var typ string
	switch kind {
	case "ec-p256", "ec-p384":
		curve := elliptic.P256()
		if kind == "ec-p384" {
			curve = elliptic.P384()
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatalf("ecdsa.GenerateKey: %v", err)
		}
		if keyDER, err = x509.MarshalECPrivateKey(k); err != nil {
			t.Fatalf("MarshalECPrivateKey: %v", err)
		}
		key, typ = k, "EC PRIVATE KEY"
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatalf("rsa.GenerateKey: %v", err)
		}
		keyDER, key, typ = x509.MarshalPKCS1PrivateKey(k), k, "RSA PRIVATE KEY"
	default:
		t.Fatalf("opensslCA: unknown kind %q", kind)
	}
	tmpl := caTemplate("openssl " + kind + " CA")
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate: %v", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock(typ, keyDER), key
}

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// ---- tests ----

func TestDeriveCADeterministic(t *testing.T) {
	tests := []struct {
		name     string
		a, b     []byte
		wantSame bool
	}{
		{"same seed", []byte("the-cluster-secret"), []byte("the-cluster-secret"), true},
		{"same empty seed", nil, []byte{}, true},
		{"different seeds", []byte("secret-one"), []byte("secret-two"), false},
		{"seed differs in its last byte", []byte("secret\x00"), []byte("secret\x01"), false},
		{"prefix of the other", []byte("secret"), []byte("secret-longer"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := meshtls.DeriveCA(tt.a), meshtls.DeriveCA(tt.b)
			if got := bytes.Equal(a.Cert.Raw, b.Cert.Raw); got != tt.wantSame {
				t.Errorf("Cert.Raw equal: got %v, want %v", got, tt.wantSame)
			}
			if got := samePublic(a.Key.Public(), b.Key.Public()); got != tt.wantSame {
				t.Errorf("CA public keys equal: got %v, want %v", got, tt.wantSame)
			}
			if !a.Cert.IsCA || a.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("derived CA: got IsCA %v key usage %b, want a CA that signs certificates", a.Cert.IsCA, a.Cert.KeyUsage)
			}
			if err := a.Cert.CheckSignatureFrom(a.Cert); err != nil {
				t.Errorf("derived CA self-signature: got error %v, want nil", err)
			}
			// Every node of the mesh computes the same CA: a certificate
			// one issues is trusted by the other exactly when they share
			// the seed.
			certPEM, keyPEM := issue(t, a, meshtls.RoleNode, "node-a", time.Hour)
			_, err := meshtls.NewPeer(b, certPEM, keyPEM)
			if got := err == nil; got != tt.wantSame {
				t.Errorf("NewPeer(CA of seed b, node cert of seed a): got error %v, want success %v", err, tt.wantSame)
			}
		})
	}
}

func TestDerive(t *testing.T) {
	seed := []byte("the-cluster-secret")
	p, err := meshtls.Derive(seed, "node-1")
	if err != nil {
		t.Fatalf("Derive: got error %v, want nil", err)
	}
	if p.Name != "node-1" {
		t.Errorf("Derive Name: got %q, want %q", p.Name, "node-1")
	}
	if got, want := p.CA().Raw, meshtls.DeriveCA(seed).Cert.Raw; !bytes.Equal(got, want) {
		t.Errorf("Derive CA: got a certificate other than DeriveCA(seed)'s")
	}
	for _, name := range []string{"", "bad name", strings.Repeat("x", 64)} {
		if _, err := meshtls.Derive(seed, name); err == nil {
			t.Errorf("Derive(seed, %q): got nil error, want one", name)
		}
	}
}

func TestCARoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ca   func(t *testing.T) *meshtls.CA
	}{
		{"NewCA", func(t *testing.T) *meshtls.CA { return newCA(t, "test CA") }},
		{"DeriveCA", func(*testing.T) *meshtls.CA { return meshtls.DeriveCA([]byte("seed")) }},
		{"ECDSA P-256 (openssl)", func(t *testing.T) *meshtls.CA {
			certPEM, keyPEM, _ := opensslCA(t, "ec-p256")
			ca, err := meshtls.ParseCA(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("ParseCA(EC PRIVATE KEY): got error %v, want nil", err)
			}
			return ca
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.ca(t)
			certPEM := orig.CertPEM()
			keyPEM, err := orig.KeyPEM()
			if err != nil {
				t.Fatalf("KeyPEM: got error %v, want nil", err)
			}
			if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
				t.Errorf("KeyPEM: got block %v, want a PKCS#8 PRIVATE KEY", block)
			}

			withKey, err := meshtls.ParseCA(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("ParseCA(cert, key): got error %v, want nil", err)
			}
			if !bytes.Equal(withKey.Cert.Raw, orig.Cert.Raw) {
				t.Errorf("ParseCA(cert, key): got another certificate, want the original")
			}
			if withKey.Key == nil || !samePublic(withKey.Key.Public(), orig.Key.Public()) {
				t.Errorf("ParseCA(cert, key): got key %T, want the original key", withKey.Key)
			}
			if again := withKey.CertPEM(); !bytes.Equal(again, certPEM) {
				t.Errorf("CertPEM after ParseCA: got\n%s\nwant\n%s", again, certPEM)
			}

			// The parsed CA issues certificates the original trusts, and
			// the other way round.
			nodeCert, nodeKey := issue(t, withKey, meshtls.RoleNode, "n1", time.Hour)
			if _, err := meshtls.NewPeer(orig, nodeCert, nodeKey); err != nil {
				t.Errorf("NewPeer(original CA, cert issued by parsed CA): got error %v, want nil", err)
			}
			nodeCert, nodeKey = issue(t, orig, meshtls.RoleNode, "n2", time.Hour)

			for _, keyPEM := range [][]byte{nil, {}, []byte(" \n\t\n")} {
				certOnly, err := meshtls.ParseCA(certPEM, keyPEM)
				if err != nil {
					t.Fatalf("ParseCA(cert, %q): got error %v, want nil", keyPEM, err)
				}
				if certOnly.Key != nil {
					t.Errorf("ParseCA(cert, %q): got key %T, want nil", keyPEM, certOnly.Key)
				}
				if !bytes.Equal(certOnly.Cert.Raw, orig.Cert.Raw) {
					t.Errorf("ParseCA(cert, %q): got another certificate, want the original", keyPEM)
				}
				if _, err := certOnly.KeyPEM(); err == nil {
					t.Errorf("KeyPEM of a CA without key: got nil error, want one")
				}
				if _, _, err := certOnly.Issue(meshtls.RoleNode, "n3", time.Hour); err == nil {
					t.Errorf("Issue by a CA without key: got nil error, want one")
				}
				// A node that only trusts the CA still checks its own
				// certificate against it.
				if _, err := meshtls.NewPeer(certOnly, nodeCert, nodeKey); err != nil {
					t.Errorf("NewPeer(CA without key, issued node cert): got error %v, want nil", err)
				}
			}
		})
	}
}

func TestParseCARefuses(t *testing.T) {
	ca := newCA(t, "mesh CA")
	other := newCA(t, "other CA")
	caCert := ca.CertPEM()
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	nodeCert, nodeKey := issue(t, ca, meshtls.RoleNode, "n1", time.Hour)
	// Self-signed and marked a CA, but not allowed to sign certificates.
	noSignTmpl := caTemplate("cannot sign")
	noSignTmpl.KeyUsage = x509.KeyUsageDigitalSignature
	noSignCert, noSignKey := craft(t, nil, noSignTmpl)
	// Allowed to sign, but not a CA.
	notCATmpl := caTemplate("not a CA")
	notCATmpl.IsCA, notCATmpl.MaxPathLenZero = false, false
	notCACert, notCAKey := craft(t, nil, notCATmpl)
	ecCert, ecKey, _ := opensslCA(t, "ec-p256")
	ecBlock, _ := pem.Decode(ecKey)

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr error // nil: any error
	}{
		{"key of another CA", caCert, otherKey, meshtls.ErrCert},
		{"node certificate as CA", nodeCert, nil, meshtls.ErrCert},
		{"node certificate and its key as CA", nodeCert, nodeKey, meshtls.ErrCert},
		{"CA flag without cert-sign usage", noSignCert, noSignKey, meshtls.ErrCert},
		{"cert-sign usage without CA flag", notCACert, notCAKey, meshtls.ErrCert},
		{"garbage certificate", []byte("not a certificate at all"), nil, meshtls.ErrCert},
		{"empty certificate", nil, nil, meshtls.ErrCert},
		{"certificate PEM with garbage DER", pemBlock("CERTIFICATE", []byte("garbage")), nil, meshtls.ErrCert},
		{"key PEM in the certificate's place", otherKey, nil, meshtls.ErrCert},
		{"garbage key", caCert, []byte("not a key"), meshtls.ErrCert},
		{"PEM of another type as key", caCert, pemBlock("PUBLIC KEY", []byte("x")), meshtls.ErrCert},
		{"key PEM with garbage DER", caCert, pemBlock("PRIVATE KEY", []byte("garbage")), meshtls.ErrCert},
		{"EC key labelled RSA", ecCert, pemBlock("RSA PRIVATE KEY", ecBlock.Bytes), meshtls.ErrCert},
		{"certificate in the key's place", caCert, caCert, meshtls.ErrCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := meshtls.ParseCA(tt.cert, tt.key)
			if err == nil {
				t.Fatalf("ParseCA: got CA %q and nil error, want an error", got.Cert.Subject.CommonName)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseCA: got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseCAOpenSSLKeys(t *testing.T) {
	for _, kind := range []string{"ec-p256", "ec-p384", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			certPEM, keyPEM, key := opensslCA(t, kind)
			ca, err := meshtls.ParseCA(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("ParseCA: got error %v, want nil", err)
			}
			if ca.Key == nil || !samePublic(ca.Key.Public(), key.Public()) {
				t.Fatalf("ParseCA key: got %T, want the %s key", ca.Key, kind)
			}
			// The same key as PKCS#8, as KeyPEM writes it.
			pkcs8, err := ca.KeyPEM()
			if err != nil {
				t.Fatalf("KeyPEM: got error %v, want nil", err)
			}
			if _, err := meshtls.ParseCA(certPEM, pkcs8); err != nil {
				t.Errorf("ParseCA(cert, KeyPEM()): got error %v, want nil", err)
			}
			// The CA issues; its node certificates make peers.
			nodeCert, nodeKey := issue(t, ca, meshtls.RoleNode, "n1", time.Hour)
			p, err := meshtls.NewPeer(ca, nodeCert, nodeKey)
			if err != nil {
				t.Fatalf("NewPeer(%s CA): got error %v, want nil", kind, err)
			}
			if p.Name != "n1" {
				t.Errorf("Peer.Name: got %q, want n1", p.Name)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "mesh CA")
	tests := []struct {
		role, name string
		wantOK     bool
		wantEKU    []x509.ExtKeyUsage
	}{
		{meshtls.RoleNode, "node-1", true, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{meshtls.RoleClient, "alice", true, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{meshtls.RoleNode, "a", true, nil},
		{meshtls.RoleNode, "Node_2.example-x", true, nil},
		{meshtls.RoleNode, "9lives", true, nil},
		{meshtls.RoleNode, strings.Repeat("x", 63), true, nil},
		{meshtls.RoleNode, strings.Repeat("x", 64), false, nil},
		{meshtls.RoleNode, "", false, nil},
		{meshtls.RoleNode, "-leading-dash", false, nil},
		{meshtls.RoleNode, ".hidden", false, nil},
		{meshtls.RoleNode, "_under", false, nil},
		{meshtls.RoleNode, "has space", false, nil},
		{meshtls.RoleNode, "has:colon", false, nil},
		{meshtls.RoleNode, "a/b", false, nil},
		{meshtls.RoleNode, "trailing\n", false, nil},
		{meshtls.RoleNode, "nöde", false, nil},
		{"", "node-1", false, nil},
		{"admin", "node-1", false, nil},
		{"Node", "node-1", false, nil},
		{"node ", "node-1", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.role+"/"+tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tt.role, tt.name, time.Hour)
			if (err == nil) != tt.wantOK {
				t.Fatalf("Issue(%q, %q): got error %v, want success %v", tt.role, tt.name, err, tt.wantOK)
			}
			if !tt.wantOK {
				if certPEM != nil || keyPEM != nil {
					t.Errorf("Issue(%q, %q) failed but returned PEM", tt.role, tt.name)
				}
				return
			}
			cert := certOf(t, certPEM)
			id, err := meshtls.IdentityOf(cert)
			if err != nil {
				t.Fatalf("IdentityOf: got error %v, want nil", err)
			}
			if want := (meshtls.Identity{Role: tt.role, Name: tt.name}); id != want {
				t.Errorf("IdentityOf: got %+v, want %+v", id, want)
			}
			if cert.Subject.CommonName != tt.name {
				t.Errorf("CommonName: got %q, want %q", cert.Subject.CommonName, tt.name)
			}
			if cert.IsCA {
				t.Errorf("IsCA: got true, want false")
			}
			if tt.wantEKU != nil && !slicesEqual(cert.ExtKeyUsage, tt.wantEKU) {
				t.Errorf("ExtKeyUsage: got %v, want %v", cert.ExtKeyUsage, tt.wantEKU)
			}
			if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("signature by the CA: got error %v, want nil", err)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("certificate and key: got error %v, want a matching pair", err)
			}
			if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
				t.Errorf("key PEM: got block %v, want PKCS#8 PRIVATE KEY", block)
			}
		})
	}

	t.Run("CA without key", func(t *testing.T) {
		certOnly, err := meshtls.ParseCA(ca.CertPEM(), nil)
		if err != nil {
			t.Fatalf("ParseCA: %v", err)
		}
		if c, k, err := certOnly.Issue(meshtls.RoleNode, "n1", time.Hour); err == nil || c != nil || k != nil {
			t.Errorf("Issue by a CA without key: got (%d bytes, %d bytes, %v), want an error only", len(c), len(k), err)
		}
	})
	t.Run("fresh key and serial each time", func(t *testing.T) {
		c1, k1 := issue(t, ca, meshtls.RoleNode, "n1", time.Hour)
		c2, k2 := issue(t, ca, meshtls.RoleNode, "n1", time.Hour)
		if bytes.Equal(k1, k2) {
			t.Errorf("two issues for one name: got the same key, want fresh keys")
		}
		if a, b := certOf(t, c1).SerialNumber, certOf(t, c2).SerialNumber; a.Cmp(b) == 0 {
			t.Errorf("two issues for one name: got serial %v twice, want distinct serials", a)
		}
	})
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIssueClipsNotAfter(t *testing.T) {
	ca, err := meshtls.NewCA("short CA", 2*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	derived := meshtls.DeriveCA([]byte("seed"))
	tests := []struct {
		name string
		ca   *meshtls.CA
		ttl  time.Duration
		// want NotAfter: the CA's, or about now+ttl
		wantCAs bool
	}{
		{"within the CA", ca, time.Hour, false},
		{"beyond the CA", ca, 48 * time.Hour, true},
		{"far beyond the CA", ca, 100 * 365 * 24 * time.Hour, true},
		{"derived CA, within", derived, 10 * 365 * 24 * time.Hour, false},
		{"derived CA, beyond 2125", derived, 200 * 365 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			certPEM, _ := issue(t, tt.ca, meshtls.RoleNode, "n1", tt.ttl)
			after := time.Now()
			got := certOf(t, certPEM).NotAfter
			if tt.wantCAs {
				if !got.Equal(tt.ca.Cert.NotAfter) {
					t.Errorf("NotAfter: got %v, want the CA's %v", got, tt.ca.Cert.NotAfter)
				}
				return
			}
			// Certificate times have one-second precision.
			lo, hi := before.Add(tt.ttl).Add(-time.Second), after.Add(tt.ttl).Add(time.Second)
			if got.Before(lo) || got.After(hi) {
				t.Errorf("NotAfter: got %v, want between %v and %v", got, lo, hi)
			}
			if got.After(tt.ca.Cert.NotAfter) {
				t.Errorf("NotAfter: got %v, want not after the CA's %v", got, tt.ca.Cert.NotAfter)
			}
		})
	}
}

func TestIdentityOf(t *testing.T) {
	ca := newCA(t, "mesh CA")
	tests := []struct {
		name    string
		uris    []string
		want    meshtls.Identity
		wantErr string // substring; "" means success
	}{
		{"node", []string{"ourci:node:n1"}, meshtls.Identity{Role: meshtls.RoleNode, Name: "n1"}, ""},
		{"client", []string{"ourci:client:alice"}, meshtls.Identity{Role: meshtls.RoleClient, Name: "alice"}, ""},
		{"beside a foreign URI", []string{"spiffe://example.org/x", "ourci:node:n1", "https://n1.example"}, meshtls.Identity{Role: meshtls.RoleNode, Name: "n1"}, ""},
		{"no URI", nil, meshtls.Identity{}, "no OurCI identity"},
		{"only foreign URIs", []string{"spiffe://example.org/node/n1", "urn:node:n1"}, meshtls.Identity{}, "no OurCI identity"},
		{"two identities", []string{"ourci:node:n1", "ourci:node:n2"}, meshtls.Identity{}, "2 OurCI identities"},
		{"node and client", []string{"ourci:node:n1", "ourci:client:n1"}, meshtls.Identity{}, "2 OurCI identities"},
		{"the same identity twice", []string{"ourci:node:n1", "ourci:node:n1"}, meshtls.Identity{}, "2 OurCI identities"},
		{"unknown role", []string{"ourci:admin:root"}, meshtls.Identity{}, "malformed"},
		{"no name", []string{"ourci:node"}, meshtls.Identity{}, "malformed"},
		{"empty name", []string{"ourci:node:"}, meshtls.Identity{}, "malformed"},
		{"bad name", []string{"ourci:node:-n1"}, meshtls.Identity{}, "malformed"},
		{"name with a colon", []string{"ourci:node:n1:x"}, meshtls.Identity{}, "malformed"},
		{"name too long", []string{"ourci:node:" + strings.Repeat("n", 64)}, meshtls.Identity{}, "malformed"},
		{"hierarchical form", []string{"ourci://node/n1"}, meshtls.Identity{}, "malformed"},
		{"malformed beside a good one", []string{"ourci:node:n1", "ourci:root:n1"}, meshtls.Identity{}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, _ := craft(t, ca, leafTemplate("cn-"+tt.name, tt.uris...))
			got, err := meshtls.IdentityOf(certOf(t, certPEM))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("IdentityOf: got (%+v, %v), want (%+v, nil)", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("IdentityOf: got %+v and nil error, want an error containing %q", got, tt.wantErr)
			}
			if !errors.Is(err, meshtls.ErrCert) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("IdentityOf: got error %v, want %v containing %q", err, meshtls.ErrCert, tt.wantErr)
			}
			if got != (meshtls.Identity{}) {
				t.Errorf("IdentityOf on error: got %+v, want the zero Identity", got)
			}
		})
	}

	t.Run("CA certificate", func(t *testing.T) {
		if got, err := meshtls.IdentityOf(ca.Cert); err == nil {
			t.Errorf("IdentityOf(CA certificate): got %+v, want an error", got)
		}
	})
}

func TestNewPeer(t *testing.T) {
	ca := newCA(t, "mesh CA")
	other := newCA(t, "other CA")
	nodeCert, nodeKey := issue(t, ca, meshtls.RoleNode, "n1", time.Hour)
	_, otherNodeKey := issue(t, ca, meshtls.RoleNode, "n2", time.Hour)
	clientCert, clientKey := issue(t, ca, meshtls.RoleClient, "alice", time.Hour)
	foreignCert, foreignKey := issue(t, other, meshtls.RoleNode, "n1", time.Hour)
	// Issue does not check ttl: a negative one makes a certificate that
	// expired a minute ago (it became valid an hour ago).
	expiredCert, expiredKey := issue(t, ca, meshtls.RoleNode, "n1", -time.Minute)
	futureTmpl := leafTemplate("n1", "ourci:node:n1")
	futureTmpl.NotBefore, futureTmpl.NotAfter = time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	futureCert, futureKey := craft(t, ca, futureTmpl)
	// A node identity, but usable only for client authentication.
	clientOnlyTmpl := leafTemplate("n1", "ourci:node:n1")
	clientOnlyTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientOnlyCert, clientOnlyKey := craft(t, ca, clientOnlyTmpl)
	serverOnlyTmpl := leafTemplate("n1", "ourci:node:n1")
	serverOnlyTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverOnlyCert, serverOnlyKey := craft(t, ca, serverOnlyTmpl)
	// A client identity with both usages: the role alone must refuse it.
	clientBothCert, clientBothKey := craft(t, ca, leafTemplate("alice", "ourci:client:alice"))
	noIDCert, noIDKey := craft(t, ca, leafTemplate("n1"))
	selfCert, selfKey := craft(t, nil, leafTemplate("n1", "ourci:node:n1"))
	caKey, _ := ca.KeyPEM()

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   []error // nil: success; else the error is one of these
		wantMsg   string  // substring of the error, if set
	}{
		{"node certificate", nodeCert, nodeKey, nil, ""},
		{"client certificate", clientCert, clientKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"client role with server usage", clientBothCert, clientBothKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, "cannot act as a node"},
		{"node certificate of another CA", foreignCert, foreignKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"self-signed node certificate", selfCert, selfKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"expired", expiredCert, expiredKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, "expired"},
		{"not yet valid", futureCert, futureKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"node identity, client usage only", clientOnlyCert, clientOnlyKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"node identity, server usage only", serverOnlyCert, serverOnlyKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"no identity", noIDCert, noIDKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, "no OurCI identity"},
		{"the CA itself", ca.CertPEM(), caKey, []error{meshtls.ErrCert, meshtls.ErrPeer}, ""},
		{"certificate and key mismatch", nodeCert, otherNodeKey, []error{meshtls.ErrCert}, ""},
		{"key of another CA's node", nodeCert, foreignKey, []error{meshtls.ErrCert}, ""},
		{"garbage certificate", []byte("garbage"), nodeKey, []error{meshtls.ErrCert}, ""},
		{"garbage key", nodeCert, []byte("garbage"), []error{meshtls.ErrCert}, ""},
		{"empty", nil, nil, []error{meshtls.ErrCert}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := meshtls.NewPeer(ca, tt.cert, tt.key)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("NewPeer: got error %v, want nil", err)
				}
				if p.Name != "n1" {
					t.Errorf("Peer.Name: got %q, want n1", p.Name)
				}
				if !bytes.Equal(p.CA().Raw, ca.Cert.Raw) {
					t.Errorf("Peer.CA: got another certificate, want the mesh CA's")
				}
				return
			}
			if err == nil {
				t.Fatalf("NewPeer: got peer %q and nil error, want one of %v", p.Name, tt.wantErr)
			}
			if p != nil {
				t.Errorf("NewPeer on error: got peer %q, want nil", p.Name)
			}
			matched := false
			for _, w := range tt.wantErr {
				matched = matched || errors.Is(err, w)
			}
			if !matched {
				t.Errorf("NewPeer: got error %v, want one of %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("NewPeer: got error %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}
