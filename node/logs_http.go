package node

import (
	"net/http"

	"github.com/ourci/ourci/node/httpapi"
)

// The log routes are node/httpapi's (logs.go); the node is their Logs:
// reads from the nearest source (logs_follow.go), sections of sealed logs
// (logs_sections.go), and the copies of other nodes' running attempts
// (logs_stream.go).
type logService struct{ n *Node }

func (l logService) Serve(w http.ResponseWriter, r *http.Request, p Principal, id string, q httpapi.LogQuery) {
	l.n.serveLog(w, r, p, id, q.Attempt, q.Follow, q.Stamped, q.From)
}

func (l logService) ServeSections(w http.ResponseWriter, r *http.Request, p Principal, id string, attempt int) {
	l.n.serveSections(w, r, p, id, attempt)
}

func (l logService) TakeChunks(w http.ResponseWriter, task string, attempt int, from string, body []byte) {
	l.n.takeChunks(w, task, attempt, from, body)
}

func (l logService) ServeCopy(w http.ResponseWriter, r *http.Request, task string, attempt int, q httpapi.LogQuery) {
	l.n.serveCopy(w, r, task, attempt, q.Follow, q.Stamped, q.From)
}
