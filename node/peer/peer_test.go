package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, h http.HandlerFunc) (*Client, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Client{HTTP: srv.Client(), Token: "tok", Self: "n1"}, srv.URL
}

// Every call carries the cluster token; a refusal is an *AnswerError with
// the API error's message and code; chunk answers are parsed.
func TestCalls(t *testing.T) {
	var got []string
	c, base := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+r.Header.Get(StreamerHeader))
		switch {
		case strings.HasSuffix(r.URL.Path, "/pull"):
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"schema_version":1,"error":"no live node holds the blob","code":"not_found"}`)
		case strings.HasPrefix(r.URL.Path, "/v1/internal/leave"):
			fmt.Fprint(w, `{}`)
		case strings.HasPrefix(r.URL.Path, "/v1/internal/logs/"):
			b, _ := io.ReadAll(r.Body)
			if string(b) == "gap" {
				w.WriteHeader(http.StatusConflict)
				fmt.Fprint(w, `{"next":3}`)
				return
			}
			fmt.Fprint(w, `{"next":7}`)
		case strings.HasPrefix(r.URL.Path, "/v1/tasks/"):
			fmt.Fprint(w, "line 1\nline 2\nthe last line\n")
		case r.URL.Path == "/v1/health":
			w.WriteHeader(http.StatusServiceUnavailable) // an unhealthy node still says its index
			fmt.Fprint(w, `{"schema_version":1,"node":"n2","ok":false,"reason":"disk full","index":42}`)
		}
	})
	ctx := context.Background()

	err := c.Pull(ctx, base, "ab12", 9)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Code != "not_found" || ae.Message != "no live node holds the blob" {
		t.Errorf("pull refused: got %#v (%v), want a 502 not_found AnswerError with the body's message", err, err)
	}
	if err := c.Leave(ctx, base, "n 1"); err != nil {
		t.Errorf("leave: got %v, want nil", err)
	}
	if next, gap, err := c.PostLogChunks(ctx, base, "t1", 2, []byte("chunks")); next != 7 || gap || err != nil {
		t.Errorf("chunks: got next %d gap %v err %v, want 7 false nil", next, gap, err)
	}
	if next, gap, err := c.PostLogChunks(ctx, base, "t1", 2, []byte("gap")); next != 3 || !gap || err != nil {
		t.Errorf("chunks after a gap: got next %d gap %v err %v, want 3 true nil", next, gap, err)
	}
	if b, err := c.LogTail(ctx, base, "t1", 2, 14); string(b) != "the last line\n" || err != nil {
		t.Errorf("log tail: got %q, %v; want the last 14 bytes", b, err)
	}
	if h, ok := c.Health(ctx, base); !ok || h.Index != 42 || h.OK || h.Reason != "disk full" {
		t.Errorf("health of an unhealthy node: got %+v ok %v, want index 42, not ok, its reason", h, ok)
	}
	want := []string{
		"POST /v1/internal/blobs/ab12/pull?index=9 Bearer tok ",
		"POST /v1/internal/leave?member=n+1 Bearer tok ",
		"POST /v1/internal/logs/t1/2 Bearer tok n1",
		"POST /v1/internal/logs/t1/2 Bearer tok n1",
		"GET /v1/tasks/t1/log?attempt=2 Bearer tok ",
		"GET /v1/health  ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\ngot  %q\nwant %q", got, want)
	}
}

// A chunk answer without its next chunk is an error, not chunk 0.
func TestChunksWithoutNext(t *testing.T) {
	c, base := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
	if _, _, err := c.PostLogChunks(context.Background(), base, "t", 1, nil); err == nil || !strings.Contains(err.Error(), "no next chunk") {
		t.Errorf("got %v, want an error saying the answer had no next chunk", err)
	}
}

type dir struct {
	leader func() string
	urls   map[string]string
}

func (d dir) LeaderName() string { return d.leader() }
func (d dir) MemberURL(name string) (string, bool) {
	u, ok := d.urls[name]
	return u, ok
}

// LeaderURL waits for a leader to be known, and gives up with ErrNoLeader.
func TestLeaderURL(t *testing.T) {
	calls := 0
	d := dir{leader: func() string {
		calls++
		if calls < 3 {
			return ""
		}
		return "n2"
	}, urls: map[string]string{"n2": "https://n2"}}
	if u, err := LeaderURL(context.Background(), d, time.Minute); u != "https://n2" || err != nil {
		t.Errorf("got %q, %v; want https://n2 once it is known", u, err)
	}
	none := dir{leader: func() string { return "gone" }}
	if _, err := LeaderURL(context.Background(), none, 50*time.Millisecond); !errors.Is(err, ErrNoLeader) {
		t.Errorf("with a leader no member address is known for: got %v, want ErrNoLeader", err)
	}
}
