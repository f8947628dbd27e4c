package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/ourci/ourci/node/leader"
)

// A node's Raft identity belongs to its data directory, not to its name:
// each data directory gets its own server ID when it is created, kept in
// DATA_DIR/node-id as NAME@HEX. A machine whose disk was wiped or replaced
// comes back under its old name as a new Raft server: it joins as a
// non-voter, is promoted only once its replica caught up, and the leader
// removes the old ID. (A voter with an empty log that kept its old ID could
// help elect a leader that lacks acknowledged entries.)
//
// Data directories made before IDs existed keep the name as their ID.

// idFile is the data directory's Raft server ID file.
const idFile = "node-id"

// identity is what a node knows about itself at start.
type identity struct {
	ID string
	// Fresh: the data directory held no ledger yet. Anything the ledger
	// assigns to this node's name was given to an earlier incarnation.
	Fresh bool
}

// loadIdentity reads the data directory's Raft ID, or makes one. A
// directory without Raft state always gets a new ID, even if an ID file
// survived: an ID whose log is gone must never vote again. A directory with
// state but no ID file was made before IDs existed: its ID is the name.
func loadIdentity(dir, name string, hadState bool) (identity, error) {
	p := filepath.Join(dir, idFile)
	if hadState {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return identity{}, fmt.Errorf("node: %s: %w", p, err)
		}
		id := strings.TrimSpace(string(b))
		if id == "" {
			id = name
			if err := writeFileSync(p, []byte(id+"\n")); err != nil {
				return identity{}, fmt.Errorf("node: write %s: %w", p, err)
			}
		}
		if owner := leader.NameOfID(raft.ServerID(id)); owner != name {
			return identity{}, fmt.Errorf("%w: the data directory %s belongs to node %q (Raft ID %s), not %q: start it with --name %s, or give this node a data directory of its own",
				ErrConfig, dir, owner, id, name, owner)
		}
		return identity{ID: id}, nil
	}
	b := make([]byte, 4)
	rand.Read(b)
	id := name + "@" + hex.EncodeToString(b)
	if err := writeFileSync(p, []byte(id+"\n")); err != nil {
		return identity{}, fmt.Errorf("node: write %s: %w", p, err)
	}
	return identity{ID: id, Fresh: true}, nil
}

// writeFileSync writes a small file whole: a temp file, flushed, renamed
// into place, its directory flushed.
func writeFileSync(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
