package node

import (
	"net/http/httptest"
	"testing"
)

func TestStreamsExemptsOnlyLongRoutes(t *testing.T) {
	for _, tt := range []struct {
		method, url string
		want        bool
	}{
		{"GET", "/v1/tasks/abc/log?follow=1", true},
		{"GET", "/v1/internal/logs/abc/1?follow=1&from=10", true},
		{"POST", "/v1/internal/logs/abc/1", false}, // chunks: bounded like any write
		{"GET", "/v1/internal/blobs/" + "ab12", true},
		{"GET", "/v1/jobs/j1?index=5", true},
		{"GET", "/v1/jobs/j1", false},
		{"POST", "/v1/spawn", false},
		{"GET", "/v1/status", false},
	} {
		r := httptest.NewRequest(tt.method, tt.url, nil)
		if got := streams(r); got != tt.want {
			t.Errorf("streams(%s %s) = %v, want %v", tt.method, tt.url, got, tt.want)
		}
	}
}
