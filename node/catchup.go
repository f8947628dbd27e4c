package node

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// waitCaughtUp holds the runner back, when the node starts, until its
// replica has applied what the leader had applied: a node restarting on
// an old replica must not start attempts the mesh has since taken away
// from it (requeued elsewhere, or closed). Without a leader nothing can be
// known, so it waits for one.
func (n *Node) waitCaughtUp() {
	start := time.Now()
	for {
		if n.ctx.Err() != nil {
			return
		}
		if n.IsLeader() {
			return // a leader's replica holds everything committed
		}
		if base, err := n.leaderURL(n.ctx, 2*time.Second); err == nil {
			if idx, ok := n.peerIndex(base); ok {
				n.waitIndex(n.ctx, idx, 30*time.Second)
				if n.fsm.Index() >= idx {
					if d := time.Since(start); d > time.Second {
						n.log.Info("caught up with the leader; running tasks now", "index", idx, "after", d.Round(time.Millisecond))
					}
					return
				}
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// peerIndex asks a node for its applied ledger index.
func (n *Node) peerIndex(base string) (uint64, bool) {
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/health", nil)
	if err != nil {
		return 0, false
	}
	resp, err := n.peerHTTP.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var h struct {
		Index uint64 `json:"index"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		return 0, false
	}
	return h.Index, true
}
