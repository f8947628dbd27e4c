package node

import (
	"fmt"
	"strings"

	"github.com/ourci/ourci/gossip"
)

// waitingReason says why a queued task has no node yet. quarantined
// says why a node is out of the topic's service ("": it is not).
func waitingReason(topic string, members []gossip.Member, load func(string) int, quarantined func(node string) string) string {
	subs, slots, used := 0, 0, 0
	var unhealthy, catching, held []string
	for _, m := range members {
		if !m.Meta.Subscribes(topic) || m.Meta.Draining {
			continue
		}
		switch why := quarantined(m.Name); {
		case why != "":
			held = append(held, m.Name+" ("+why+")")
		case m.Meta.Unhealthy != "":
			unhealthy = append(unhealthy, m.Name+" ("+m.Meta.Unhealthy+")")
		case m.Meta.CatchingUp:
			catching = append(catching, m.Name)
		default:
			subs++
			slots += m.Meta.Slots
			used += load(m.Name)
		}
	}
	switch {
	case subs == 0 && len(held) > 0 && len(unhealthy) == 0 && len(catching) == 0:
		return fmt.Sprintf("every node serving %s is quarantined for it: %s; ourci-node rig release NODE %s puts one back", topic, strings.Join(held, "; "), topic)
	case subs == 0 && len(unhealthy) > 0:
		return fmt.Sprintf("every node serving %s is unhealthy: %s", topic, strings.Join(unhealthy, "; "))
	case subs == 0 && len(catching) > 0:
		return fmt.Sprintf("the node(s) serving %s are catching up with the ledger: %s", topic, strings.Join(catching, ", "))
	case subs == 0:
		return "no node subscribes to " + topic
	case used >= slots:
		return fmt.Sprintf("all %d slots on the %d node(s) subscribed to %s are busy", slots, subs, topic)
	}
	return "waiting for the leader to assign it"
}
