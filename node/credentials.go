package node

import "github.com/ourci/ourci/node/auth"

// The mesh's credentials live in node/auth; these names keep the node's
// API (Config.Secret, the handlers' principals) in one import for callers.
type (
	Secret    = auth.Secret
	Principal = auth.Principal
)

var (
	NewSecret   = auth.NewSecret
	ParseSecret = auth.ParseSecret
	LoadSecret  = auth.LoadSecret
	WriteSecret = auth.WriteSecret
	ErrSecret   = auth.ErrSecret
	ErrToken    = auth.ErrToken
)

// Operator roles (auth.RoleRead...).
const (
	RoleRead    = auth.RoleRead
	RoleOperate = auth.RoleOperate
	RoleMetrics = auth.RoleMetrics
)
