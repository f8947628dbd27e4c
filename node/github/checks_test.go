package github_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/github"
)

func TestChecksCreateFindUpdateBatches(t *testing.T) {
	srv, app, _ := appServer(t)
	ck := github.NewChecks(app)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if id, err := ck.Find(ctx, "octo", "fw", sha, "job-1"); err != nil || id != 0 {
		t.Fatalf("find before create: got %d, %v; want 0", id, err)
	}
	id, err := ck.Create(ctx, "octo", "fw", sha, "job-1", "https://ci.example.com/jobs/job-1", github.Output{Title: "running", Summary: "…"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A new leader finds the run by the job's ID rather than making another.
	if got, err := ck.Find(ctx, "octo", "fw", sha, "job-1"); err != nil || got != id {
		t.Fatalf("find: got %d, %v; want %d", got, err, id)
	}
	if got, _ := ck.Find(ctx, "octo", "fw", sha, "job-2"); got != 0 {
		t.Fatalf("find another job's run: got %d, want 0", got)
	}
	var anns []github.Annotation
	for i := 1; i <= 101; i++ {
		anns = append(anns, github.Annotation{Path: "a.c", StartLine: i, Message: fmt.Sprint("boom ", i)})
	}
	out := github.Output{Title: "failed", Summary: "summary", Annotations: anns}
	if err := ck.Update(ctx, "octo", "fw", id, github.CheckCompleted, github.ConclusionFailure, out, time.Now()); err != nil {
		t.Fatal(err)
	}
	runs := srv.CheckRuns("octo", "fw", sha)
	if len(runs) != 1 {
		t.Fatalf("check runs: got %d, want 1", len(runs))
	}
	r := runs[0]
	if !slices.Equal(r.AnnotationsPerCall, []int{0, 50, 50, 1}) || len(r.Annotations) != 101 {
		t.Errorf("annotations per request: got %v, want [0 50 50 1]", r.AnnotationsPerCall)
	}
	// The status changes only with the last request: completed with every annotation.
	if !slices.Equal(r.History, []string{"in_progress", "in_progress", "in_progress", "completed/failure"}) {
		t.Errorf("history: got %v", r.History)
	}
	if err := ck.Update(ctx, "octo", "fw", id, github.CheckCompleted, "", out, time.Time{}); err == nil {
		t.Error("completed without a conclusion: no error")
	}
}

func TestLogAnnotations(t *testing.T) {
	log := strings.Join([]string{
		"cc -c src/main.c",
		"src/main.c:12:5: error: 'x' undeclared (first use in this function)",
		"./lib/util.h:3: error: expected ';'",
		"src/main.c:14:1: warning: unused variable", // not an error
		"/usr/include/stdio.h:20: error: outside the checkout",
		"../up.c:1: error: outside too",
		"src/main.c:12:5: error: 'x' undeclared (first use in this function)", // repeated
		"fw/boot.S:99: fatal error: no such file",
	}, "\n")
	got := github.LogAnnotations([]byte(log), "make", 10)
	want := []github.Annotation{
		{Path: "src/main.c", StartLine: 12, EndLine: 12, StartColumn: 5, EndCol: 5, Level: "failure", Title: "make", Message: "error: 'x' undeclared (first use in this function)"},
		{Path: "lib/util.h", StartLine: 3, EndLine: 3, Level: "failure", Title: "make", Message: "error: expected ';'"},
		{Path: "fw/boot.S", StartLine: 99, EndLine: 99, Level: "failure", Title: "make", Message: "fatal error: no such file"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := github.LogAnnotations([]byte(log), "make", 1); len(got) != 1 {
		t.Errorf("limit 1: got %d", len(got))
	}
}

func TestReportMarkdown(t *testing.T) {
	r := github.Report{
		Job: "j1", JobURL: "https://ci/jobs/j1", Headline: "failed (task t2 failed): 1 passed, 1 failed",
		Tasks: []github.ReportTask{
			{ID: "t1", Name: "ci/all.sh", URL: "https://ci/tasks/t1", State: "passed", Duration: 61 * time.Second},
			{ID: "t2", Name: "make | tee", URL: "https://ci/tasks/t2", Depth: 1, State: "failed (exit 2)", Duration: 3 * time.Second},
		},
		Failed: []github.FailedTask{{ID: "t2", Name: "make | tee", URL: "https://ci/tasks/t2", Lines: []string{"x ``` y", "Error 1"}}},
	}
	md := r.Markdown()
	for _, want := range []string{
		"[j1](https://ci/jobs/j1)", "| [ci/all.sh](https://ci/tasks/t1) | passed | 1m1s |",
		"&nbsp;&nbsp;└ [make \\| tee](https://ci/tasks/t2) | failed (exit 2) | 3s |",
		"### Failed: [make | tee](https://ci/tasks/t2)", "````text\nx ``` y\nError 1\n````",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
