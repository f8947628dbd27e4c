package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
)

// Headers of the internal log routes.
const (
	// WholeHeader (a header or trailer) says a log answer holds the whole
	// log: its source had sealed it, or the attempt ended.
	WholeHeader = "X-Ourci-Log-Whole"
	// StreamerHeader names the node that posts an attempt's log chunks.
	StreamerHeader = "X-Ourci-Streamer"
)

// Client calls other nodes' peer APIs.
type Client struct {
	HTTP  *http.Client // mutual TLS, connections kept per peer
	Token string       // the cluster token
	Self  string       // this node's name
}

// Auth puts the cluster token on r.
func (c *Client) Auth(r *http.Request) { r.Header.Set("Authorization", "Bearer "+c.Token) }

// Do sends r with the cluster token.
func (c *Client) Do(r *http.Request) (*http.Response, error) {
	c.Auth(r)
	return c.HTTP.Do(r)
}

// API is the public API client for the peer at base, over the peer port.
func (c *Client) API(base string) *api.Client {
	a := api.NewClient(base, c.Token)
	a.HTTP = c.HTTP // keeps connections to peers open across calls
	a.RetryFor = time.Second
	return a
}

// Report delivers a node's report to the leader at base and returns a
// ledger index at or after its entry (0 when the answer did not say).
func (c *Client) Report(ctx context.Context, base string, r api.Report) (uint64, error) {
	return c.API(base).ReportAt(ctx, r)
}

// call sends a request without a body and turns any answer but 200 into
// a *api.StatusError.
func (c *Client) call(ctx context.Context, method, u string) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError(resp)
	}
	return nil
}

// AnswerError is a peer's answer other than 200: its status, and the
// error and code of its JSON body (or the body's start, when it is not
// an API error).
type AnswerError struct {
	Status  int
	Code    string // api.Code*, when the body said
	Message string
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("peer: answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

func answerError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &AnswerError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	var body struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.Code = body.Error, body.Code
	}
	return e
}
