package node

import (
	"sync"
	"sync/atomic"
)

// DefaultWebhookInflight is the default cap of webhook body bytes a node
// holds while it reads and verifies them (Config.WebhookInflight): two
// bodies of GitHub's largest (25 MB) at once, or thousands of ordinary
// ones (a pull_request delivery is some tens of kilobytes).
const DefaultWebhookInflight = 64 << 20

// hookBudget is the cap of webhook body bytes in flight on the public
// listener. A request reserves its buffer as it grows, from the first
// byte read until its answer is written (a follower's relay included, so
// what it relays to the leader is bounded by its own cap).
type hookBudget struct {
	max  int64
	mu   sync.Mutex
	used int64
	busy atomic.Uint64 // webhooks answered 503 for the cap
}

// reserve takes k bytes of the budget, or reports that they are not free.
func (b *hookBudget) reserve(k int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+k > b.max {
		return false
	}
	b.used += k
	return true
}

func (b *hookBudget) release(k int64) {
	b.mu.Lock()
	b.used -= k
	b.mu.Unlock()
}

func (b *hookBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// WebhookInflight is how many webhook body bytes this node holds now for
// requests in progress on its public listener.
func (n *Node) WebhookInflight() int64 { return n.hooks.inUse() }
