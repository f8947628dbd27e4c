package meshtls_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/ourci/ourci/node/meshtls"
)

// fuzzCA is the fixed CA FuzzNewPeer checks against: derived, so its key
// is the same in every run and worker.
var fuzzCA = meshtls.DeriveCA([]byte("meshtls fuzz CA"))

// validName is the spec of a certificate name, written apart from the
// package's own pattern.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// seedPEMs are real certificates and keys: CAs of every key kind, node and
// client certificates of fuzzCA and of another CA, and crafted oddities.
type seedPEMs struct {
	caCert, caKey                 []byte // fuzzCA
	otherCert, otherKey           []byte // a random Ed25519 CA
	ecCert, ecKey                 []byte // openssl-style EC CA
	rsaCert, rsaKey               []byte // openssl-style RSA CA
	nodeCert, nodeKey             []byte // of fuzzCA
	clientCert, clientKey         []byte // of fuzzCA
	foreignCert, foreignKey       []byte // node of the other CA
	twoIDCert, twoIDKey           []byte // of fuzzCA, two identities
	expiredCert, expiredKey       []byte // node of fuzzCA, expired
	badIDCert, badIDKey           []byte // of fuzzCA, malformed identity
	clientBothCert, clientBothKey []byte // client identity with server usage
}

func makeSeeds(t testing.TB) seedPEMs {
	var s seedPEMs
	var err error
	s.caCert = fuzzCA.CertPEM()
	if s.caKey, err = fuzzCA.KeyPEM(); err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	other := newCA(t, "other CA")
	s.otherCert = other.CertPEM()
	if s.otherKey, err = other.KeyPEM(); err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	s.ecCert, s.ecKey, _ = opensslCA(t, "ec-p256")
	s.rsaCert, s.rsaKey, _ = opensslCA(t, "rsa")
	s.nodeCert, s.nodeKey = issue(t, fuzzCA, meshtls.RoleNode, "node-1", time.Hour)
	s.clientCert, s.clientKey = issue(t, fuzzCA, meshtls.RoleClient, "alice", time.Hour)
	s.foreignCert, s.foreignKey = issue(t, other, meshtls.RoleNode, "node-1", time.Hour)
	s.expiredCert, s.expiredKey = issue(t, fuzzCA, meshtls.RoleNode, "node-1", -time.Minute)
	s.twoIDCert, s.twoIDKey = craft(t, fuzzCA, leafTemplate("two", "ourci:node:a", "ourci:node:b"))
	s.badIDCert, s.badIDKey = craft(t, fuzzCA, leafTemplate("bad", "ourci:node:-x"))
	s.clientBothCert, s.clientBothKey = craft(t, fuzzCA, leafTemplate("alice", "ourci:client:alice"))
	return s
}

func derOf(certPEM []byte) []byte {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil
	}
	return block.Bytes
}

// pemForms is how a fuzz input is tried: as given, and, where it is not
// PEM, as DER wrapped in each PEM type the parsers take, so that the fuzzer
// can mutate certificates and keys themselves rather than their base64.
func pemForms(cert, key []byte) [][2][]byte {
	certs, keys := [][]byte{cert}, [][]byte{key}
	if block, _ := pem.Decode(cert); block == nil && len(cert) > 0 {
		certs = append(certs, pemBlock("CERTIFICATE", cert))
	}
	if block, _ := pem.Decode(key); block == nil && len(key) > 0 {
		for _, typ := range []string{"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"} {
			keys = append(keys, pemBlock(typ, key))
		}
	}
	var out [][2][]byte
	for _, c := range certs {
		for _, k := range keys {
			out = append(out, [2][]byte{c, k})
		}
	}
	return out
}

// firstCertDER is the leaf as tls.X509KeyPair picks it: the first
// CERTIFICATE block, other blocks skipped.
func firstCertDER(b []byte) []byte {
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return nil
		}
		if block.Type == "CERTIFICATE" {
			return block.Bytes
		}
	}
}

func FuzzParseCA(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.caCert, s.caKey)
	f.Add(s.caCert, []byte(nil))
	f.Add(s.caCert, s.otherKey)
	f.Add(s.otherCert, s.otherKey)
	f.Add(s.ecCert, s.ecKey)
	f.Add(s.rsaCert, s.rsaKey)
	f.Add(s.ecCert, s.rsaKey)
	f.Add(s.nodeCert, s.nodeKey)
	f.Add(append(append([]byte{}, s.caCert...), s.otherCert...), s.caKey)
	f.Add([]byte("garbage"), []byte("garbage"))
	f.Add(pemBlock("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01, 0x00}), pemBlock("EC PRIVATE KEY", []byte{0x30, 0x00}))
	for _, pair := range [][2][]byte{{s.caCert, s.caKey}, {s.ecCert, s.ecKey}, {s.rsaCert, s.rsaKey}, {s.nodeCert, s.nodeKey}} {
		f.Add(derOf(pair[0]), derOf(pair[1]))
	}
	f.Fuzz(func(t *testing.T, certIn, keyIn []byte) {
		for _, in := range pemForms(certIn, keyIn) {
			checkParseCA(t, in[0], in[1])
		}
	})
}

func checkParseCA(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := meshtls.ParseCA(certPEM, keyPEM)
	if err != nil {
		if ca != nil {
			t.Errorf("ParseCA failed (%v) but returned a CA", err)
		}
		if !errors.Is(err, meshtls.ErrCert) {
			t.Errorf("ParseCA: got error %v, want %v", err, meshtls.ErrCert)
		}
		return
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("ParseCA accepted %q: IsCA %v, key usage %b, want a CA that signs", ca.Cert.Subject.CommonName, ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	again, err := meshtls.ParseCA(ca.CertPEM(), nil)
	if err != nil {
		t.Fatalf("ParseCA(CertPEM()) of an accepted CA: got error %v, want nil", err)
	}
	if !bytes.Equal(again.Cert.Raw, ca.Cert.Raw) {
		t.Fatalf("ParseCA(CertPEM()): got another certificate, want the same")
	}
	if ca.Key == nil {
		if len(bytes.TrimSpace(keyPEM)) != 0 {
			t.Fatalf("ParseCA with %d bytes of key: got a CA without key", len(keyPEM))
		}
		return
	}
	if !samePublic(ca.Key.Public(), ca.Cert.PublicKey) {
		t.Fatalf("ParseCA: got a key that does not match the certificate")
	}
	k, err := ca.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM of an accepted key: got error %v, want nil", err)
	}
	withKey, err := meshtls.ParseCA(ca.CertPEM(), k)
	if err != nil {
		t.Fatalf("ParseCA(CertPEM(), KeyPEM()): got error %v, want nil", err)
	}
	if !samePublic(withKey.Key.Public(), ca.Key.Public()) {
		t.Fatalf("ParseCA(CertPEM(), KeyPEM()): got another key")
	}
}

func FuzzNewPeer(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.nodeCert, s.nodeKey)
	f.Add(s.nodeCert, s.clientKey)
	f.Add(s.clientCert, s.clientKey)
	f.Add(s.foreignCert, s.foreignKey)
	f.Add(s.expiredCert, s.expiredKey)
	f.Add(s.twoIDCert, s.twoIDKey)
	f.Add(s.badIDCert, s.badIDKey)
	f.Add(s.clientBothCert, s.clientBothKey)
	f.Add(s.caCert, s.caKey)
	f.Add(append(append([]byte{}, s.nodeCert...), s.caCert...), s.nodeKey)
	f.Add([]byte("garbage"), []byte("garbage"))
	for _, pair := range [][2][]byte{{s.nodeCert, s.nodeKey}, {s.clientCert, s.clientKey}, {s.badIDCert, s.badIDKey}, {s.clientBothCert, s.clientBothKey}} {
		f.Add(derOf(pair[0]), derOf(pair[1]))
	}
	f.Fuzz(func(t *testing.T, certIn, keyIn []byte) {
		for _, in := range pemForms(certIn, keyIn) {
			checkNewPeer(t, in[0], in[1])
		}
	})
}

func checkNewPeer(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	p, err := meshtls.NewPeer(fuzzCA, certPEM, keyPEM)
	if err != nil {
		if p != nil {
			t.Errorf("NewPeer failed (%v) but returned a peer", err)
		}
		return
	}
	// Success only for a node certificate of fuzzCA, valid now.
	leaf, err := x509.ParseCertificate(firstCertDER(certPEM))
	if err != nil {
		t.Fatalf("NewPeer accepted a certificate x509 cannot parse: %v", err)
	}
	if err := leaf.CheckSignatureFrom(fuzzCA.Cert); err != nil {
		t.Fatalf("NewPeer accepted %q, not signed by the CA: %v", leaf.Subject.CommonName, err)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		t.Fatalf("NewPeer accepted %q valid only %v..%v", leaf.Subject.CommonName, leaf.NotBefore, leaf.NotAfter)
	}
	id, err := meshtls.IdentityOf(leaf)
	if err != nil || id.Role != meshtls.RoleNode {
		t.Fatalf("NewPeer accepted %q with identity %+v (%v), want a node", leaf.Subject.CommonName, id, err)
	}
	if p.Name != id.Name {
		t.Fatalf("Peer.Name: got %q, want %q", p.Name, id.Name)
	}
}

func FuzzIdentityOf(f *testing.F) {
	s := makeSeeds(f)
	for _, c := range [][]byte{s.nodeCert, s.clientCert, s.caCert, s.twoIDCert, s.badIDCert, s.clientBothCert, s.ecCert, s.rsaCert} {
		f.Add(derOf(c))
	}
	for _, uris := range [][]string{
		{"OURCI:node:upper"}, {"ourci:node:a", "ourci:client:a"}, {"ourci:node:a%20b"},
		{"ourci:node"}, {"ourci://node/a"}, {"spiffe://x/y", "ourci:client:c"},
	} {
		certPEM, _ := craft(f, fuzzCA, leafTemplate("seed", uris...))
		f.Add(derOf(certPEM))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := meshtls.IdentityOf(cert)
		if err != nil {
			if !errors.Is(err, meshtls.ErrCert) {
				t.Errorf("IdentityOf: got error %v, want %v", err, meshtls.ErrCert)
			}
			if id != (meshtls.Identity{}) {
				t.Errorf("IdentityOf failed (%v) but returned %+v", err, id)
			}
			return
		}
		if id.Role != meshtls.RoleNode && id.Role != meshtls.RoleClient {
			t.Fatalf("IdentityOf: got role %q, want %q or %q", id.Role, meshtls.RoleNode, meshtls.RoleClient)
		}
		if !validName.MatchString(id.Name) || len(id.Name) > 63 {
			t.Fatalf("IdentityOf: got name %q, want letters, digits, '.', '_', '-', at most 63", id.Name)
		}
		// Exactly one "ourci" URI, and it is this identity.
		var ours []string
		for _, u := range cert.URIs {
			if u.Scheme == "ourci" {
				ours = append(ours, u.Opaque)
			}
		}
		if len(ours) != 1 || ours[0] != id.Role+":"+id.Name {
			t.Fatalf("IdentityOf: got %+v from ourci URIs %q, want the one URI ROLE:NAME", id, ours)
		}
	})
}
