package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The gossip keyring starts as the one key derived from the cluster
// secret. Rotation (ourci-node keyring install, use, remove; on every node)
// changes it without splitting the mesh: every node first learns the new
// key, then encrypts with it, then forgets the old one. The ring is kept
// in DATA_DIR/keyring.json so a restarted node rejoins with it.

type keyringFile struct {
	Keys []string `json:"keys"` // base64; the first encrypts
}

func (n *Node) keyringPath() string { return filepath.Join(n.cfg.DataDir, "keyring.json") }

// gossipKeys returns the stored keyring, or the derived key.
func (n *Node) gossipKeys() ([][]byte, error) {
	b, err := os.ReadFile(n.keyringPath())
	if errors.Is(err, os.ErrNotExist) {
		return [][]byte{n.cfg.Secret.GossipKey()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: keyring: %w", err)
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.Keys) == 0 {
		return nil, fmt.Errorf("node: keyring %s unreadable: %v", n.keyringPath(), err)
	}
	var keys [][]byte
	for _, k := range f.Keys {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("node: keyring %s: %w", n.keyringPath(), err)
		}
		keys = append(keys, raw)
	}
	return keys, nil
}

func (n *Node) saveKeyring() error {
	var f keyringFile
	for _, k := range n.gossip.Keys() {
		f.Keys = append(f.Keys, base64.StdEncoding.EncodeToString(k))
	}
	b, _ := json.Marshal(f)
	tmp := n.keyringPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, n.keyringPath())
}
