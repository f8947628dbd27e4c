package node

import "time"

// lossGrace is how long a node's gossip runs before absence means loss
// (leader.Loss, and the autopilot's removal of dead servers).
const lossGrace = 5 * time.Second
