package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/auth"
)

// The gossip keyring: GET and POST /v1/keyring (cluster token), this
// node's own (each node's keyring is changed on each node:
// docs/OPERATIONS.md, "Rotating the gossip key").

// Keyring is a node's gossip keyring, saved across restarts.
type Keyring interface {
	Keys() [][]byte
	InstallKey(key []byte) error
	UseKey(key []byte) error
	RemoveKey(key []byte) error
	// Save writes the keyring to the data directory.
	Save() error
}

// KeyFingerprint names a key without revealing it.
func KeyFingerprint(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:6])
}

// handleKeyring changes this node's gossip keyring on POST
// ({"op":"install"|"use"|"remove","key":"<base64>"}) and lists its keys'
// fingerprints.
func (s *Server) handleKeyring(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if r.Method == http.MethodPost {
		var req struct {
			Op  string `json:"op"`
			Key string `json:"key"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if !DecodeBody(w, r, &req) {
			return
		}
		key, err := base64.StdEncoding.DecodeString(req.Key)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, errors.New("keyring: a key is 16, 24 or 32 bytes, base64 (ourci-node keyring generate)"))
			return
		}
		switch req.Op {
		case "install":
			err = s.Keyring.InstallKey(key)
		case "use":
			err = s.Keyring.UseKey(key)
		case "remove":
			err = s.Keyring.RemoveKey(key)
		default:
			err = fmt.Errorf("keyring: op %q: want install, use or remove", req.Op)
		}
		if err != nil {
			WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
			return
		}
		if err := s.Keyring.Save(); err != nil {
			WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
			return
		}
		s.log().Info("gossip keyring changed", "op", req.Op, "key", KeyFingerprint(key))
	}
	var fps []string
	for _, k := range s.Keyring.Keys() {
		fps = append(fps, KeyFingerprint(k))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"schema_version": api.SchemaVersion, "node": s.Health.Name(), "keys": fps})
}
