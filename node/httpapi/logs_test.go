package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/peer"
)

// TestLogRoutes: the log routes read their parameters strictly (a bad
// attempt, tail or offset is a 400 before any source is asked) and pass
// the rest on; ?tail=N keeps the last N lines of whatever the source
// wrote; the chunk route takes the streaming node's name from its header.
func TestLogRoutes(t *testing.T) {
	h := newHarness(t, fakeLead{leading: true})
	tok := h.secret.ClusterToken()
	for _, c := range []struct {
		path     string
		peerPort bool
		want     int
		body     string
	}{
		{"/v1/tasks/t1/log", false, 200, "log t1 {Attempt:0 Follow:false Stamped:false From:0}"},
		{"/v1/tasks/t1/log?attempt=2&follow=1&timestamps=1&from=7", false, 200, "log t1 {Attempt:2 Follow:true Stamped:true From:7}"},
		{"/v1/tasks/t1/log?attempt=0", false, 400, ""},
		{"/v1/tasks/t1/log?attempt=x", false, 400, ""},
		{"/v1/tasks/t1/log?tail=0", false, 400, ""},
		{"/v1/tasks/t1/log?tail=3&follow=1", false, 400, ""},
		{"/v1/tasks/t1/log?from=-1", false, 400, ""},
		{"/v1/tasks/t1/log/sections?attempt=3", false, 200, "sections t1 3"},
		{"/v1/tasks/t1/log/sections?attempt=-3", false, 400, ""},
		{"/v1/internal/logs/t1/2?follow=1&from=5", true, 200, "copy t1 2 {Attempt:2 Follow:true Stamped:false From:5}"},
		{"/v1/internal/logs/t1/2", false, 404, ""},
	} {
		rec := h.do(t, c.peerPort, "GET", c.path, tok, nil)
		if rec.Code != c.want || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("GET %s: got %d %q, want %d %q", c.path, rec.Code, rec.Body, c.want, c.body)
		}
	}
	for _, c := range []struct {
		path string
		want int
		body string
	}{
		{"/v1/internal/logs/t1/1", 200, "chunks t1 1 from n2: 5 bytes"},
		{"/v1/internal/logs/t1/0", 400, ""},
	} {
		rec := h.do(t, true, "POST", c.path, tok, strings.NewReader("chunk"), peer.StreamerHeader, "n2")
		if rec.Code != c.want || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("POST %s: got %d %q, want %d %q", c.path, rec.Code, rec.Body, c.want, c.body)
		}
	}

	// ?tail=N of what a source writes in pieces.
	rec := httptest.NewRecorder()
	tw := &tailWriter{ResponseWriter: rec, n: 2}
	for _, p := range []string{"one\ntw", "o\nthree\n", "four\n"} {
		tw.Write([]byte(p))
	}
	tw.flush()
	if got := rec.Body.String(); got != "three\nfour\n" {
		t.Errorf("tail 2: got %q, want %q", got, "three\nfour\n")
	}
}
