package leader

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ourci/ourci/gossip"
	"github.com/ourci/ourci/raftfsm"
)

// Replication asks live nodes to pull blobs (artifacts, sealed logs) that
// have fewer live holders than Replicas, one pull per blob at a time, each
// to the live member that takes work and holds the fewest bytes. A blob no
// live node holds waits for one to come back (nothing to copy from).
type Replication struct {
	Ledger  Ledger
	Members Members
	// Replicas is the holders wanted (--blob-replicas), at most the
	// members there are.
	Replicas int
	// Pull asks member to fetch hash from its holders and returns once it
	// holds it (or failed).
	Pull func(ctx context.Context, member, hash string) error
	// Go runs a pull in the background (the node's tracked goroutines).
	Go func(func())
	// Settle is how long a burst of ledger changes settles before the
	// ledger is walked again; Backoff how long a failed blob waits.
	Settle, Backoff time.Duration
	// Every is how often it looks without a change (0: 5 s): a failed
	// blob is tried again then.
	Every time.Duration
	Log   *slog.Logger
}

func (Replication) Name() string { return "replication" }

// pull is one blob for one member to fetch.
type pull struct{ hash, node string }

// planPulls chooses, from the ledger and the live members, the pulls to
// ask for now; busy blobs (a pull in flight) are left alone. The order
// follows the hashes, so a plan is the same for the same input.
func planPulls(s *raftfsm.State, members []gossip.Member, replicas int, busy func(hash string) bool) []pull {
	live := memberMap(members)
	usage := s.BlobUsage()
	hashes := make([]string, 0, len(s.Blobs))
	for h := range s.Blobs {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	var out []pull
	for _, h := range hashes {
		b := s.Blobs[h]
		if busy(h) {
			continue
		}
		liveHolders := 0
		for _, hn := range b.Holders {
			if _, ok := live[hn]; ok {
				liveHolders++
			}
		}
		if liveHolders == 0 || liveHolders >= min(replicas, len(members)) {
			continue
		}
		best := ""
		for _, m := range members {
			if _, holds := slices.BinarySearch(b.Holders, m.Name); holds || !m.Meta.Takes() {
				continue
			}
			if best == "" || usage[m.Name][1] < usage[best][1] || usage[m.Name][1] == usage[best][1] && m.Name < best {
				best = m.Name
			}
		}
		if best != "" {
			out = append(out, pull{h, best})
		}
	}
	return out
}

// Run plans and asks for pulls until ctx ends: again after the ledger
// changed (and settled), the membership changed, or Every.
func (r Replication) Run(ctx context.Context) {
	if r.Every <= 0 {
		r.Every = 5 * time.Second
	}
	var mu sync.Mutex
	inflight := map[string]bool{}
	busy := func(h string) bool {
		mu.Lock()
		defer mu.Unlock()
		return inflight[h]
	}
	for {
		_, fch := r.Ledger.Watch()
		gch := r.Members.Watch()
		members := r.Members.Members()
		var pulls []pull
		r.Ledger.Read(func(s *raftfsm.State, _ uint64) {
			pulls = planPulls(s, members, r.Replicas, busy)
		})
		for _, p := range pulls {
			mu.Lock()
			inflight[p.hash] = true
			mu.Unlock()
			r.Go(func() {
				defer func() {
					mu.Lock()
					delete(inflight, p.hash)
					mu.Unlock()
				}()
				if err := r.Pull(ctx, p.node, p.hash); err != nil && ctx.Err() == nil {
					r.Log.Warn("blob replication failed", "hash", p.hash, "member", p.node, "err", err)
					sleep(ctx, r.Backoff) // before this blob is tried again
				}
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-fch:
			sleep(ctx, r.Settle)
		case <-gch:
		case <-time.After(r.Every):
		}
	}
}
