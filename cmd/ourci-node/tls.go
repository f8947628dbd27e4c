package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ourci/ourci/node/meshtls"
)

// runTLS is `ourci-node tls ca|cert`: the mesh CA and the certificates it
// issues to nodes (and to clients, which can never act as nodes).
func runTLS(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "ca":
			return runTLSCA(args[1:])
		case "cert":
			return runTLSCert(args[1:])
		}
	}
	fmt.Fprint(os.Stderr, `usage: ourci-node tls ca [--out DIR] [--days N] [--from-secret]
       ourci-node tls cert NAME [--out DIR] [--ca DIR] [--client] [--days N] [--from-secret]

Without a CA of its own, a mesh derives one from the cluster secret and
each node issues itself a certificate when it starts. For a CA whose key
stays off the nodes:

  ourci-node tls ca --out certs              # certs/ca.pem, certs/ca-key.pem
  ourci-node tls cert node-1 --out certs     # certs/node-1.pem, certs/node-1-key.pem
  ourci-node join --name node-1 --tls-dir certs ...  (copy ca.pem and node-1*.pem, not ca-key.pem)
`)
	return exitUsage
}

func runTLSCA(args []string) int {
	fs := newFlagSet("tls ca", "[--out DIR] [--days N] [--from-secret]")
	out := fs.String("out", ".", "directory to write ca.pem and ca-key.pem in")
	days := fs.Int("days", 3650, "validity in days")
	fromSecret := fs.Bool("from-secret", false, "write the CA this mesh derives from its cluster secret, instead of a new one")
	secretFile := fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file, for --from-secret (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
	if pos, err := parse(fs, args); err != nil || len(pos) != 0 || *days < 1 {
		return exitUsage
	}
	var ca *meshtls.CA
	var err error
	if *fromSecret {
		ca, err = derivedCA(*secretFile)
	} else {
		ca, err = meshtls.NewCA("OurCI mesh CA", time.Duration(*days)*24*time.Hour)
	}
	if err != nil {
		return exitFor(err)
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return exitFor(err)
	}
	if err := writeNew(filepath.Join(*out, "ca.pem"), ca.CertPEM(), 0o644); err != nil {
		return exitFor(err)
	}
	if err := writeNew(filepath.Join(*out, "ca-key.pem"), key, 0o600); err != nil {
		return exitFor(err)
	}
	fmt.Printf("wrote %s (give it to every node: --tls-ca) and %s (keep it off the nodes)\n",
		filepath.Join(*out, "ca.pem"), filepath.Join(*out, "ca-key.pem"))
	return exitOK
}

func runTLSCert(args []string) int {
	fs := newFlagSet("tls cert", "NAME [--out DIR] [--ca DIR] [--client] [--days N] [--from-secret]")
	out := fs.String("out", ".", "directory to write NAME.pem and NAME-key.pem in")
	caDir := fs.String("ca", ".", "directory holding ca.pem and ca-key.pem")
	client := fs.Bool("client", false, "a client certificate (people, tools): it can never act as a node")
	days := fs.Int("days", 365, "validity in days (at most the CA's)")
	fromSecret := fs.Bool("from-secret", false, "sign with the CA derived from the cluster secret instead of --ca")
	secretFile := fs.String("secret-file", env("OURCI_SECRET_FILE", ""), "cluster secret file, for --from-secret (env OURCI_SECRET_FILE; default DATA_DIR/cluster.secret)")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 || *days < 1 {
		if err == nil {
			fmt.Fprintln(os.Stderr, "ourci-node tls cert: give exactly one NAME (and --days ≥ 1)")
		}
		return exitUsage
	}
	var ca *meshtls.CA
	if *fromSecret {
		ca, err = derivedCA(*secretFile)
	} else {
		ca, err = loadCA(*caDir)
	}
	if err != nil {
		return exitFor(err)
	}
	role := meshtls.RoleNode
	if *client {
		role = meshtls.RoleClient
	}
	certPEM, keyPEM, err := ca.Issue(role, pos[0], time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ourci-node tls cert:", err)
		return exitUsage
	}
	certFile, keyFile := filepath.Join(*out, pos[0]+".pem"), filepath.Join(*out, pos[0]+"-key.pem")
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		return exitFor(err)
	}
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		return exitFor(err)
	}
	fmt.Printf("wrote %s certificate %s and key %s\n", role, certFile, keyFile)
	return exitOK
}

func loadCA(dir string) (*meshtls.CA, error) {
	cert, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("tls: the CA certificate (make one with `ourci-node tls ca`): %w", err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("tls: the CA key: %w", err)
	}
	return meshtls.ParseCA(cert, key)
}

// derivedCA is the CA a mesh without its own derives from the cluster
// secret in path (default DATA_DIR/cluster.secret).
func derivedCA(path string) (*meshtls.CA, error) {
	s, err := loadSecret(path)
	if err != nil {
		return nil, err
	}
	return meshtls.DeriveCA(s.TLSSeed()), nil
}

// writeNew writes a file that must not exist yet: certificates and keys
// are never overwritten silently.
func writeNew(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("tls: %s exists; remove it first to replace it", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tlsFlags are join's flags for a mesh with its own CA.
type tlsFlags struct{ dir, ca, cert, key string }

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.dir, "tls-dir", env("OURCI_TLS_DIR", ""), "directory holding ca.pem, NAME.pem and NAME-key.pem (env OURCI_TLS_DIR); default: a CA derived from the cluster secret")
	fs.StringVar(&t.ca, "tls-ca", env("OURCI_TLS_CA", ""), "mesh CA certificate file (env OURCI_TLS_CA)")
	fs.StringVar(&t.cert, "tls-cert", env("OURCI_TLS_CERT", ""), "this node's certificate file, from `ourci-node tls cert NAME` (env OURCI_TLS_CERT)")
	fs.StringVar(&t.key, "tls-key", env("OURCI_TLS_KEY", ""), "this node's key file (env OURCI_TLS_KEY)")
}

// peer loads the node's TLS identity; nil when no flag is given (the node
// derives one from the cluster secret).
func (t *tlsFlags) peer(name string) (*meshtls.Peer, error) {
	ca, cert, key := t.ca, t.cert, t.key
	if t.dir != "" {
		ca = or(ca, filepath.Join(t.dir, "ca.pem"))
		cert = or(cert, filepath.Join(t.dir, name+".pem"))
		key = or(key, filepath.Join(t.dir, name+"-key.pem"))
	}
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if ca == "" || cert == "" || key == "" {
		return nil, errors.New("--tls-ca, --tls-cert and --tls-key go together (or --tls-dir)")
	}
	var files [3][]byte
	for i, f := range []string{ca, cert, key} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		files[i] = b
	}
	c, err := meshtls.ParseCA(files[0], nil)
	if err != nil {
		return nil, fmt.Errorf("tls: %s: %w", ca, err)
	}
	p, err := meshtls.NewPeer(c, files[1], files[2])
	if err != nil {
		return nil, fmt.Errorf("tls: %s: %w", cert, err)
	}
	return p, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
