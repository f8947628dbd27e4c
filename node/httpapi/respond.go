package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/leader"
	"github.com/ourci/ourci/raftfsm"
)

// MaxBody bounds every request body the API reads (but blob uploads).
const MaxBody = 1 << 20

// Sentinels a service wraps to choose the answer's status.
var (
	// ErrTooLarge: a request is larger than a quota allows (413).
	ErrTooLarge = errors.New("node: too large")
	// ErrNotAccepted: no live node serving the topic accepts spawns from
	// this origin (--topic-accept): 403.
	ErrNotAccepted = errors.New("node: not accepted")
)

// DecodeBody decodes a JSON request body strictly (unknown fields are an
// error at the API's edge) and answers 400 or 413 when it cannot.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteBodyError(w, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

// WriteBodyError answers a request body that could not be read or
// decoded: 413 past its bound, else 400.
func WriteBodyError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code = http.StatusRequestEntityTooLarge
	}
	WriteError(w, code, api.CodeBadRequest, err)
}

// WriteJSON answers code with v as indented JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers code with err as an api.Error of kind.
func WriteError(w http.ResponseWriter, code int, kind string, err error) {
	WriteJSON(w, code, api.Error{SchemaVersion: api.SchemaVersion, Error: err.Error(), Code: kind})
}

// WriteLedgerError maps a refusal or a failed write to its answer.
func WriteLedgerError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, raftfsm.ErrJobClosed):
		WriteError(w, http.StatusConflict, api.CodeJobClosed, err)
	case errors.Is(err, raftfsm.ErrStaleAttempt):
		WriteError(w, http.StatusConflict, api.CodeStale, err)
	case errors.Is(err, raftfsm.ErrConflict):
		WriteError(w, http.StatusConflict, api.CodeConflict, err)
	case errors.Is(err, raftfsm.ErrNotFound):
		WriteError(w, http.StatusNotFound, api.CodeNotFound, err)
	case errors.Is(err, raftfsm.ErrQuota):
		WriteError(w, http.StatusTooManyRequests, api.CodeQuota, err)
	case errors.Is(err, raftfsm.ErrInvalid):
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err)
	case errors.Is(err, leader.ErrNotYet):
		WriteError(w, http.StatusServiceUnavailable, api.CodeNotYet, err)
	case errors.Is(err, leader.ErrNotLeader):
		WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		WriteError(w, http.StatusServiceUnavailable, api.CodeNoLeader, err)
	default:
		WriteError(w, http.StatusInternalServerError, api.CodeInternal, err)
	}
}
