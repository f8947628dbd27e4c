package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

const testToken = "test-token"

// fakeJobs serves GET /v1/jobs/{id} from a list of versions of one job, as
// the node's blocking query does: without index the first version; with
// index, the first version past it, or (the wait ran out) the last one.
type fakeJobs struct {
	t        *testing.T
	versions []api.JobDetail
	mu       sync.Mutex
	queries  []string
}

func (f *fakeJobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.Error{SchemaVersion: 1, Error: "bad token", Code: api.CodeUnauthorized})
		return
	}
	if r.URL.Path != "/v1/jobs/"+f.versions[0].Job.ID {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{SchemaVersion: 1, Error: "no such job", Code: api.CodeNotFound})
		return
	}
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	f.mu.Unlock()
	d := f.versions[len(f.versions)-1]
	if s := r.URL.Query().Get("index"); s == "" {
		d = f.versions[0]
	} else {
		idx, _ := strconv.ParseUint(s, 10, 64)
		if r.URL.Query().Get("wait") == "" {
			f.t.Errorf("a blocking query without wait: %s", r.URL.RawQuery)
		}
		for _, v := range f.versions {
			if v.Index > idx {
				d = v
				break
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d)
}

// jobVersions builds the successive versions of job J1: a root that spawns
// a child; the child ends as childEnd.
func jobVersions(childEnd raftfsm.TaskState) []api.JobDetail {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	zero := 0
	code := 0
	if childEnd != raftfsm.TaskPassed {
		code = 2
	}
	root := api.TaskView{ID: "root", Topic: "build", Args: []string{"make"}, State: raftfsm.TaskRunning, Node: "n1", Attempt: 1, CreatedAt: t0, StartedAt: t0}
	child := api.TaskView{ID: "child", Parent: "root", Topic: "test", Args: []string{"make", "test"}, State: raftfsm.TaskQueued, Attempt: 1, CreatedAt: t0.Add(time.Second), Waiting: "all 2 slots are busy"}
	job := api.JobView{ID: "J1", State: raftfsm.JobOpen, Status: raftfsm.StatusPending, Root: "root", CreatedAt: t0}
	version := func(idx uint64, j api.JobView, ts ...api.TaskView) api.JobDetail {
		j.Tasks = len(ts)
		for _, t := range ts {
			switch {
			case t.State == raftfsm.TaskPassed:
				j.Passed++
			case t.State.Terminal():
				j.Failed++
			default:
				j.Open++
			}
		}
		return api.JobDetail{SchemaVersion: 1, Index: idx, Job: j, Tasks: append([]api.TaskView(nil), ts...)}
	}
	var out []api.JobDetail
	out = append(out, version(10, job, root))
	out = append(out, version(12, job, root, child))
	child.State, child.Node, child.Waiting, child.StartedAt = raftfsm.TaskRunning, "n2", "", t0.Add(2*time.Second)
	out = append(out, version(15, job, root, child))
	root.State, root.ExitCode, root.FinishedAt = raftfsm.TaskPassed, &zero, t0.Add(3*time.Second)
	out = append(out, version(17, job, root, child))
	child.State, child.ExitCode, child.FinishedAt = childEnd, &code, t0.Add(4*time.Second)
	job.State, job.ClosedAt = raftfsm.JobClosed, t0.Add(4*time.Second)
	job.Status = raftfsm.StatusPassed
	if childEnd != raftfsm.TaskPassed {
		job.Status, job.Reason = raftfsm.StatusFailed, "task child "+string(childEnd)
	}
	out = append(out, version(20, job, root, child))
	return out
}

// runCaptured runs the CLI with stdout going to a file (not a terminal)
// and returns the exit code and what it printed.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdout
	os.Stdout = f
	code := run(args)
	os.Stdout = saved
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b)
}

func statusWatch(t *testing.T, srv *httptest.Server, extra ...string) (int, string) {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(testToken+"\n"), 0o600)
	args := append([]string{"status", "--watch", "--node", srv.URL, "--token-file", tok}, extra...)
	return runCaptured(t, args...)
}

func TestStatusWatchPassed(t *testing.T) {
	fj := &fakeJobs{t: t, versions: jobVersions(raftfsm.TaskPassed)}
	srv := httptest.NewServer(fj)
	defer srv.Close()
	code, out := statusWatch(t, srv, "J1")
	if code != exitOK {
		t.Errorf("exit %d, want %d; output:\n%s", code, exitOK, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape sequences in output that is not a terminal:\n%q", out)
	}
	// One drawing per version, separated by a blank line.
	drawings := strings.Split(strings.TrimSuffix(out, "\n"), "\n\n")
	if len(drawings) != len(fj.versions) {
		t.Fatalf("got %d drawings, want %d:\n%s", len(drawings), len(fj.versions), out)
	}
	wantChild := []string{"", "queued (all 2 slots are busy)", "running", "running", "passed"}
	wantProgress := []string{
		"0/1 tasks done, 0 failed, 1 running",
		"0/2 tasks done, 0 failed, 1 running, 1 queued",
		"0/2 tasks done, 0 failed, 2 running",
		"1/2 tasks done, 0 failed, 1 running",
		"2/2 tasks done, 0 failed, 0 running",
	}
	for i, dr := range drawings {
		lines := strings.Split(dr, "\n")
		if !strings.HasPrefix(lines[0], "job J1: ") {
			t.Errorf("drawing %d starts %q", i, lines[0])
		}
		if got := lines[len(lines)-1]; got != wantProgress[i] {
			t.Errorf("drawing %d: progress %q, want %q", i, got, wantProgress[i])
		}
		if wantChild[i] != "" && !regexp.MustCompile(`└─ child\s+`+regexp.QuoteMeta(wantChild[i])+`\s`).MatchString(dr) {
			t.Errorf("drawing %d: child not %q:\n%s", i, wantChild[i], dr)
		}
	}
	if !strings.Contains(drawings[len(drawings)-1], "job J1: closed, passed") {
		t.Errorf("last drawing does not show the job closed and passed:\n%s", drawings[len(drawings)-1])
	}
	if len(fj.queries) != len(fj.versions) {
		t.Errorf("%d queries for %d versions: %q", len(fj.queries), len(fj.versions), fj.queries)
	}
}

func TestStatusWatchFailed(t *testing.T) {
	srv := httptest.NewServer(&fakeJobs{t: t, versions: jobVersions(raftfsm.TaskTimedOut)})
	defer srv.Close()
	code, out := statusWatch(t, srv, "J1")
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	if !strings.HasSuffix(out, "\n2/2 tasks done, 1 failed, 0 running\n") || !strings.Contains(out, "job J1: closed, failed") {
		t.Errorf("final drawing lacks the failure:\n%s", out)
	}
}

func TestStatusWatchErrors(t *testing.T) {
	srv := httptest.NewServer(&fakeJobs{t: t, versions: jobVersions(raftfsm.TaskPassed)})
	defer srv.Close()
	if code, _ := statusWatch(t, srv, "NOPE"); code != exitNotFound {
		t.Errorf("unknown job: exit %d, want %d", code, exitNotFound)
	}
	if code, _ := statusWatch(t, srv); code != exitUsage {
		t.Errorf("--watch without a job: exit %d, want %d", code, exitUsage)
	}
}

// TestWatchOnATerminal draws as on a terminal: the screen is cleared
// before each drawing, states are coloured, and the colours do not upset
// the columns.
func TestWatchOnATerminal(t *testing.T) {
	versions := jobVersions(raftfsm.TaskFailed)
	srv := httptest.NewServer(&fakeJobs{t: t, versions: versions})
	defer srv.Close()
	var buf bytes.Buffer
	w := watcher{out: &buf, tty: true, pal: palette{on: true}}
	d, err := w.run(context.Background(), api.NewClient(srv.URL, testToken), "J1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Job.Status != raftfsm.StatusFailed {
		t.Errorf("final status %s", d.Job.Status)
	}
	out := buf.String()
	if n := strings.Count(out, clearScreen); n != len(versions) {
		t.Errorf("screen cleared %d times, want %d", n, len(versions))
	}
	for _, want := range []string{sgrBlue + "running", sgrYellow + "queued", sgrGreen + "passed", sgrRed + "failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	last := out[strings.LastIndex(out, clearScreen)+len(clearScreen):]
	var plain bytes.Buffer
	renderJobIn(&plain, d, palette{})
	stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(last, "")
	if !strings.HasPrefix(stripped, plain.String()) {
		t.Errorf("coloured drawing, stripped of colour, differs from the plain one:\n%s\nvs\n%s", stripped, plain.String())
	}
}
