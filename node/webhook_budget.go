package node

import "github.com/ourci/ourci/node/httpapi"

// DefaultWebhookInflight is the default cap of webhook body bytes a node
// holds while it reads and verifies them (Config.WebhookInflight; see
// httpapi.WebhookBudget).
const DefaultWebhookInflight = httpapi.DefaultWebhookInflight

// WebhookInflight is how many webhook body bytes this node holds now for
// requests in progress on its public listener.
func (n *Node) WebhookInflight() int64 { return n.hooks.InUse() }
