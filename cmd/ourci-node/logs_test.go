package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
)

// TestLogsSections: logs --sections prints the sections as a table,
// nested ones indented and what the task wrote escaped; --json prints the
// API's answer; an attempt not sealed yet says so and exits as refused.
func TestLogsSections(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	answer := api.LogSections{SchemaVersion: 1, Task: "T1", Attempt: 2, Lines: 40, Sections: []api.LogSection{
		{Name: "build", Title: "Building", Style: "gitlab", FirstLine: 2, LastLine: 30, Start: t0, End: t0.Add(90 * time.Second), DurationMs: 90000, Collapsed: true},
		{Name: "deps", Title: "deps", Style: "github", FirstLine: 3, LastLine: 9, Start: t0.Add(time.Second), End: t0.Add(3500 * time.Millisecond), DurationMs: 2500, Depth: 1},
		{Name: "evil\x1b]0;pwned\x07", Style: "github", FirstLine: 31, LastLine: 40, Start: t0.Add(91 * time.Second), End: t0.Add(92 * time.Second), DurationMs: 1000, Open: true},
	}}
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer "+testToken:
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.Error{SchemaVersion: 1, Error: "bad token", Code: api.CodeUnauthorized})
		case r.URL.Path == "/v1/tasks/T1/log/sections":
			json.NewEncoder(w).Encode(answer)
		case r.URL.Path == "/v1/tasks/RUNNING/log/sections":
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.Error{SchemaVersion: 1, Error: "task RUNNING attempt 1 has no sealed log yet: its log's sections are available once the attempt ends", Code: api.CodeConflict})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{SchemaVersion: 1, Error: "no task", Code: api.CodeNotFound})
		}
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := func(args ...string) (int, string) {
		t.Helper()
		return runCaptured(t, append([]string{"logs", "--node", srv.URL, "--token-file", tok}, args...)...)
	}

	code, out := logs("--sections", "--attempt", "2", "T1")
	want := strings.Join([]string{
		"task T1 attempt 2: 3 sections in 40 lines",
		"SECTION               LINES  START                     DURATION",
		"build: Building       2-30   2026-03-04T05:06:07.000Z  1m30s",
		"  deps                3-9    2026-03-04T05:06:08.000Z  2.5s",
		`evil\x1b]0;pwned\x07  31-40  2026-03-04T05:07:38.000Z  1s (not closed)`,
		"",
	}, "\n")
	if code != exitOK || out != want {
		t.Errorf("--sections: exit %d, output\n%s\nwant\n%s", code, out, want)
	}
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("--sections printed the task's control characters: %q", out)
	}
	if len(queries) != 1 || queries[0] != "attempt=2" {
		t.Errorf("queries %q, want one with attempt=2", queries)
	}

	code, out = logs("T1", "--sections", "--json")
	var got api.LogSections
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || !reflect.DeepEqual(got, answer) {
		t.Errorf("--sections --json: exit %d, %v:\n%s", code, err, out)
	}
	if !strings.Contains(out, `"schema_version": 1`) || !strings.Contains(out, `"first_line": 2`) || strings.Contains(out, "\x1b") {
		t.Errorf("--sections --json is not the API's answer, escaped:\n%s", out)
	}

	if code, out := logs("--sections", "RUNNING"); code != exitRefused || out != "" {
		t.Errorf("--sections of a running attempt: exit %d, output %q; want %d and nothing", code, out, exitRefused)
	}
	if code, _ := logs("--sections", "NOPE"); code != exitNotFound {
		t.Errorf("--sections of no task: exit %d, want %d", code, exitNotFound)
	}
	for _, args := range [][]string{{"--json", "T1"}, {"--sections", "-f", "T1"}, {"--sections", "--tail", "3", "T1"}, {"--sections", "--timestamps", "T1"}} {
		if code, _ := logs(args...); code != exitUsage {
			t.Errorf("logs %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
