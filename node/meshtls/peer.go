package meshtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// ALPN protocols on a node's peer port.
const (
	ProtoRaft = "ourci-raft/1"
	ProtoHTTP = "http/1.1" // net/http serves only "", "http/1.0" and "http/1.1" as HTTP/1 (other ALPN names need Server.TLSNextProto)
)

// HandshakeTimeout bounds a TLS handshake on the peer port, either side.
const HandshakeTimeout = 5 * time.Second

// ErrPeer marks a connection refused because the other end is not a node
// of this mesh (no certificate, another CA, a client certificate, no TLS).
var ErrPeer = errors.New("meshtls: peer is not a node of this mesh")

// ErrHandshake marks a dial whose TLS handshake failed (refused by either
// side, or timed out), as opposed to a connection that never opened.
var ErrHandshake = errors.New("meshtls: tls handshake failed")

// Peer is a node's TLS identity: its node certificate and the CA it trusts.
type Peer struct {
	Name  string // from the certificate
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool
	ca    *x509.Certificate
}

// derivedTTL: a certificate a node issues itself at start lives in memory
// only and is made again at each start.
const derivedTTL = 10 * 365 * 24 * time.Hour

// Derive makes the identity of a node of a mesh without its own CA: the CA
// derived from seed (DeriveCA) issues a fresh node certificate for name.
func Derive(seed []byte, name string) (*Peer, error) {
	ca := DeriveCA(seed)
	certPEM, keyPEM, err := ca.Issue(RoleNode, name, derivedTTL)
	if err != nil {
		return nil, err
	}
	return NewPeer(ca, certPEM, keyPEM)
}

// NewPeer checks a node certificate and key against ca and makes the
// identity: the certificate must be signed by ca, valid now, and carry the
// node role.
func NewPeer(ca *CA, certPEM, keyPEM []byte) (*Peer, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCert, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCert, err)
		}
	}
	p := &Peer{cert: cert, leaf: leaf, roots: x509.NewCertPool(), ca: ca.Cert}
	p.roots.AddCert(ca.Cert)
	id, err := p.verify(cert.Certificate, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, fmt.Errorf("%w: this node's own certificate: %w", ErrCert, err)
	}
	if _, err := p.verify(cert.Certificate, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("%w: this node's own certificate: %w", ErrCert, err)
	}
	p.Name = id.Name
	return p, nil
}

// NotAfter is when this node's certificate expires: peers refuse it
// from then on.
func (p *Peer) NotAfter() time.Time { return p.leaf.NotAfter }

// CA is the certificate of the CA this peer trusts.
func (p *Peer) CA() *x509.Certificate { return p.ca }

// verify checks a presented chain against the mesh CA for usage and
// requires the node role.
func (p *Peer) verify(raw [][]byte, usage x509.ExtKeyUsage) (Identity, error) {
	if len(raw) == 0 {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrPeer)
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrPeer, err)
		}
		certs[i] = c
	}
	// The role first (from the still unverified leaf, for the message
	// only): a client certificate is refused as such, whatever its chain.
	id, err := IdentityOf(certs[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	if id.Role != RoleNode {
		return Identity{}, fmt.Errorf("%w: %s certificate %q: a %s certificate cannot act as a node", ErrPeer, id.Role, id.Name, id.Role)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: p.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		return Identity{}, fmt.Errorf("%w: certificate %q: %w", ErrPeer, certs[0].Subject.CommonName, err)
	}
	return id, nil
}

// ServerConfig admits only nodes of this mesh, on the given protocols.
func (p *Peer) ServerConfig(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.cert},
		NextProtos:   protos,
		// Verification is ours (VerifyConnection): the chain against the
		// mesh CA for client auth, and the node role.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := p.verify(rawChain(cs), x509.ExtKeyUsageClientAuth)
			return err
		},
	}
}

// ClientConfig dials nodes of this mesh for proto. Hostnames are not
// checked: the server must hold a node certificate of this CA.
func (p *Peer) ClientConfig(proto string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{p.cert},
		NextProtos:         []string{proto},
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if _, err := p.verify(rawChain(cs), x509.ExtKeyUsageServerAuth); err != nil {
				return err
			}
			if cs.NegotiatedProtocol != proto {
				return fmt.Errorf("%w: the server does not speak %s", ErrPeer, proto)
			}
			return nil
		},
	}
}

func rawChain(cs tls.ConnectionState) [][]byte {
	out := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		out[i] = c.Raw
	}
	return out
}

// Dial connects to a node's peer port for proto and completes the
// handshake within timeout.
func (p *Peer) Dial(addr, proto string, timeout time.Duration) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, p.ClientConfig(proto))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w with %s: %w", ErrHandshake, addr, err)
	}
	return c, nil
}
