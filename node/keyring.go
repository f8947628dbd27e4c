package node

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/ourci/ourci/node/api"
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

// keyFingerprint names a key without revealing it.
func keyFingerprint(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:6])
}

// handleKeyring (cluster token) changes this node's gossip keyring:
// {"op":"install"|"use"|"remove","key":"<base64>"}; GET lists fingerprints.
func (n *Node) handleKeyring(w http.ResponseWriter, r *http.Request, p Principal) {
	if r.Method == http.MethodPost {
		var req struct {
			Op  string `json:"op"`
			Key string `json:"key"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if !decodeBody(w, r, &req) {
			return
		}
		key, err := base64.StdEncoding.DecodeString(req.Key)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("keyring: a key is 16, 24 or 32 bytes, base64 (ourci-node keyring generate)"))
			return
		}
		switch req.Op {
		case "install":
			err = n.gossip.InstallKey(key)
		case "use":
			err = n.gossip.UseKey(key)
		case "remove":
			err = n.gossip.RemoveKey(key)
		default:
			err = fmt.Errorf("keyring: op %q: want install, use or remove", req.Op)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		if err := n.saveKeyring(); err != nil {
			writeError(w, http.StatusInternalServerError, api.CodeInternal, err)
			return
		}
		n.log.Info("gossip keyring changed", "op", req.Op, "key", keyFingerprint(key))
	}
	var fps []string
	for _, k := range n.gossip.Keys() {
		fps = append(fps, keyFingerprint(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "node": n.cfg.Name, "keys": fps})
}
