package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/ourci/ourci/node/peer"
)

// Routes is the API. The public listener (peerPort false) serves people,
// scripts and tasks; the peer listener (peerPort true: mutual TLS on the
// Raft port, nodes of this mesh only) serves the same routes plus the
// internal node-to-node ones, which the public listener does not have at
// all.
func (s *Server) Routes(peerPort bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.handleHealth)
	mux.HandleFunc("GET /metrics", s.MetricsAuth(s.handleMetrics)) // Prometheus; cluster or metrics token
	mux.HandleFunc("POST /v1/spawn", s.Auth(Spawners(s.LeaderOnly(s.handleSpawn))))
	mux.HandleFunc("GET /v1/status", s.Auth(s.handleStatus))
	mux.HandleFunc("GET /v1/ledger", s.Auth(ClusterOnly(s.handleLedger)))
	mux.HandleFunc("POST /v1/drain", s.Auth(ClusterOnly(s.handleDrain)))
	mux.HandleFunc("GET /v1/keyring", s.Auth(ClusterOnly(s.handleKeyring)))
	mux.HandleFunc("POST /v1/keyring", s.Auth(ClusterOnly(s.handleKeyring)))
	mux.HandleFunc("GET /v1/operator/snapshot", s.Auth(ClusterOnly(s.snapshotRoute(s.handleSnapshotSave))))     // backup
	mux.HandleFunc("POST /v1/operator/snapshot", s.Auth(ClusterOnly(s.snapshotRoute(s.handleSnapshotRestore)))) // restore
	mux.HandleFunc("GET /v1/operator/raft", s.Auth(ClusterOnly(s.LeaderOnly(s.handleRaftPeers))))               // list-peers
	mux.HandleFunc("POST /v1/operator/raft/remove-peer", s.Auth(ClusterOnly(s.LeaderOnly(s.handleRemovePeer)))) // remove-peer
	mux.HandleFunc("POST /webhook/github", s.webhookRoute(peerPort))
	mux.HandleFunc("POST /v1/jobs/{id}/approve", s.Auth(OperateOnly(s.LeaderOnly(s.handleApprove))))
	s.RegisterUI(mux) // the browser UI: /, /jobs/{id}, /tasks/{id}, /mesh and their event streams
	mux.HandleFunc("GET /v1/jobs/{id}", s.Auth(s.handleJob))
	mux.HandleFunc("GET /v1/rigs", s.Auth(ReadOnly(s.handleRigs)))
	mux.HandleFunc("POST /v1/rigs/{node}/{topic}/quarantine", s.Auth(OperateOnly(s.LeaderOnly(s.handleQuarantine))))
	mux.HandleFunc("POST /v1/rigs/{node}/{topic}/release", s.Auth(OperateOnly(s.LeaderOnly(s.handleRelease))))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.Auth(OperateOnly(s.LeaderOnly(s.handleCancel))))
	mux.HandleFunc("GET /v1/tasks/{id}/log", s.Auth(s.handleLog))
	mux.HandleFunc("GET /v1/tasks/{id}/log/sections", s.Auth(s.handleLogSections)) // logs --sections
	mux.HandleFunc("PUT /v1/blobs", s.Auth(Spawners(s.handleBlobPut)))
	mux.HandleFunc("GET /v1/blobs/{ref...}", s.Auth(s.handleBlobGet))
	mux.HandleFunc("HEAD /v1/blobs/{ref...}", s.Auth(s.handleBlobGet))
	mux.HandleFunc("GET /v1/blob/{token}/{ref...}", s.handleBlobURL)
	mux.HandleFunc("HEAD /v1/blob/{token}/{ref...}", s.handleBlobURL)
	if peerPort {
		mux.HandleFunc("POST /v1/internal/leave", s.Auth(ClusterOnly(s.LeaderOnly(s.handleLeave))))
		mux.HandleFunc("POST /v1/internal/report", s.Auth(ClusterOnly(s.LeaderOnly(s.handleReport))))
		mux.HandleFunc("POST "+peer.SubmitPath, s.Auth(ClusterOnly(s.LeaderOnly(s.handleSubmit))))
		mux.HandleFunc("GET /v1/internal/blobs/{hash}", s.Auth(ClusterOnly(s.handleInternalBlob)))
		mux.HandleFunc("HEAD /v1/internal/blobs/{hash}", s.Auth(ClusterOnly(s.handleInternalBlob)))
		mux.HandleFunc("POST /v1/internal/blobs/{hash}/pull", s.Auth(ClusterOnly(s.handlePull)))
		mux.HandleFunc("POST /v1/internal/logs/{task}/{attempt}", s.Auth(ClusterOnly(s.handleLogChunks)))
		mux.HandleFunc("GET /v1/internal/logs/{task}/{attempt}", s.Auth(ClusterOnly(s.handleLiveLog)))
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(ForwardedHeader) // only peers forward
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
