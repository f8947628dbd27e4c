package node

import (
	"strconv"
	"time"
)

// lossGrace is how long a node's gossip runs before absence means loss
// (leader.Loss, and the autopilot's removal of dead servers).
const lossGrace = 5 * time.Second

func itoa(i int) string { return strconv.Itoa(i) }
