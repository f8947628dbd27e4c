package artifacts

import (
	"log/slog"
	"slices"
	"time"

	"github.com/ourci/ourci/blobs"
	"github.com/ourci/ourci/raftfsm"
)

// Grace protects a local copy the ledger does not know yet (an upload or
// fetch whose record is still in flight) from collection.
const Grace = 10 * time.Minute

// Collector deletes the local copies the ledger no longer knows and
// withdraws the records of copies this node no longer has. It decides on
// the replica it is given: the node runs it only on a replica that is
// current.
type Collector struct {
	Self   string
	Store  *blobs.Store
	Ledger Ledger
	Record Recorder
	Now    func() time.Time
	Log    *slog.Logger
}

// Collect runs one pass and returns how many copies it deleted.
func (c *Collector) Collect() int {
	infos, err := c.Store.List()
	if err != nil {
		c.Log.Warn("blob gc: list", "err", err)
		return 0
	}
	now := c.Now()
	var drop []blobs.Hash
	c.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		for _, in := range infos {
			if _, known := s.Blobs[string(in.Hash)]; !known && now.Sub(in.ModTime) >= Grace {
				drop = append(drop, in.Hash)
			}
		}
	})
	c.dropLostHolds(infos)
	deleted := 0
	for _, h := range drop {
		if err := c.Store.Delete(h); err != nil {
			c.Log.Warn("blob gc: delete", "hash", h, "err", err)
			continue
		}
		deleted++
		c.Log.Info("blob gc: deleted an unreferenced copy", "hash", h)
	}
	return deleted
}

// dropLostHolds withdraws this node's holder records for blobs it no longer
// has (a disk replaced or cleaned by hand, a name a crash took back), so
// replication makes a new copy and fetchers stop asking here. infos is the
// store's listing; a blob missing from it is checked again, since a copy is
// always in place before its record is proposed.
func (c *Collector) dropLostHolds(infos []blobs.Info) {
	local := make(map[blobs.Hash]bool, len(infos))
	for _, in := range infos {
		local[in.Hash] = true
	}
	var lost []blobs.Hash
	c.Ledger.Read(func(s *raftfsm.State, _ uint64) {
		for h, b := range s.Blobs {
			if _, held := slices.BinarySearch(b.Holders, c.Self); held && !local[blobs.Hash(h)] {
				lost = append(lost, blobs.Hash(h))
			}
		}
	})
	slices.Sort(lost)
	for _, h := range lost {
		if c.Store.Has(h) {
			continue // placed after the listing
		}
		c.Log.Warn("blob copy recorded here is gone: withdrawing the record", "hash", h)
		c.Record.Dropped(h)
	}
}

// VerifyUnflushed, after an unclean stop, re-hashes the blob copies the
// previous run wrote but may not have flushed: a torn one is deleted and
// its holder record dropped (the store's OnCorrupt), one that is gone is
// found by the next Collect.
func VerifyUnflushed(s *blobs.Store, log *slog.Logger) {
	checked, corrupt, err := s.VerifyUnflushed()
	switch {
	case err != nil:
		log.Warn("blobs: verifying copies written before an unclean stop", "err", err)
	case checked > 0:
		log.Info("blobs: verified the copies written before an unclean stop", "checked", checked, "corrupt", corrupt)
	}
}
