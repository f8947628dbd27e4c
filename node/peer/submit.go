package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/ourci/ourci/raftfsm"
)

// SubmitPath is the leader's route for a follower's writes: the body is
// one encoded ledger command (raftfsm.Encode), the answer a SubmitAnswer.
const SubmitPath = "/v1/internal/submit"

// CommandType is the media type of a submitted command.
const CommandType = "application/vnd.ourci.command"

// SubmitAnswer is the leader's answer to a submitted command: the ledger
// index it was applied at and its result, refusals as codes.
type SubmitAnswer struct {
	SchemaVersion int        `json:"schema_version"`
	Index         uint64     `json:"index"`
	Result        WireResult `json:"result"`
}

// WireResult is a raftfsm.Result on the wire.
type WireResult struct {
	Job     string       `json:"job,omitempty"`
	Task    string       `json:"task,omitempty"`
	Batch   []WireResult `json:"batch,omitempty"`
	Refusal string       `json:"refusal,omitempty"` // raftfsm.RefusalCode
	Error   string       `json:"error,omitempty"`   // the refusal's message
}

// ToWire is r on the wire.
func ToWire(r raftfsm.Result) WireResult {
	w := WireResult{Job: r.Job, Task: r.Task}
	if r.Err != nil {
		w.Refusal, w.Error = raftfsm.RefusalCode(r.Err), r.Err.Error()
		if w.Refusal == "" {
			w.Refusal = "invalid" // Apply refuses only with its sentinels; anything else is still a refusal
		}
	}
	if r.Batch != nil {
		w.Batch = make([]WireResult, len(r.Batch))
		for i, b := range r.Batch {
			w.Batch[i] = ToWire(b)
		}
	}
	return w
}

// Result is w back as a raftfsm.Result; refusals match their sentinels
// (errors.Is).
func (w WireResult) Result() raftfsm.Result {
	r := raftfsm.Result{Job: w.Job, Task: w.Task}
	if w.Refusal != "" {
		r.Err = raftfsm.Refusal(w.Refusal, w.Error)
	}
	if w.Batch != nil {
		r.Batch = make([]raftfsm.Result, len(w.Batch))
		for i, b := range w.Batch {
			r.Batch[i] = b.Result()
		}
	}
	return r
}

// maxAnswer bounds a submit answer (a batch's results).
const maxAnswer = 8 << 20

// Submit has the leader at base apply c and returns its result and the
// index it was applied at. An answer other than 200 is an *AnswerError
// (503 with code no_leader or not_yet: try again; 404: the leader's binary
// predates this route).
func (c *Client) Submit(ctx context.Context, base string, cmd raftfsm.Command) (raftfsm.Result, uint64, error) {
	b, err := raftfsm.Encode(cmd)
	if err != nil {
		return raftfsm.Result{}, 0, fmt.Errorf("peer: submit: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+SubmitPath, bytes.NewReader(b))
	if err != nil {
		return raftfsm.Result{}, 0, err
	}
	req.Header.Set("Content-Type", CommandType)
	resp, err := c.Do(req)
	if err != nil {
		return raftfsm.Result{}, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return raftfsm.Result{}, 0, answerError(resp)
	}
	var a SubmitAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&a); err != nil {
		return raftfsm.Result{}, 0, fmt.Errorf("peer: submit: the leader's answer: %w", err)
	}
	return a.Result.Result(), a.Index, nil
}
