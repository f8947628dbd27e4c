package node_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/api"
)

// TestLogSectionsOfASealedLog: a task marks its log's sections both ways
// (GitHub's ::group::, GitLab's section_start:), with a pause inside one;
// once its log is sealed, any node answers the sections, timed by the
// lines' arrival, the node that ran it dead too. While it runs, the
// answer is a 409 that says when sections come.
func TestLogSectionsOfASealedLog(t *testing.T) {
	m := startMesh(t, 3, func(i int, c *node.Config) {
		if i == 0 {
			c.Topics = topics("t") // node0 runs the task, then dies
		}
	})
	ctx := testCtx(t)
	flag := filepath.Join(t.TempDir(), "go-on")
	// The GitLab markers' own times are forged (0): sections are timed by
	// arrival, so they cannot say anything.
	script := strings.Join([]string{
		`echo intro`,
		fmt.Sprintf(`while [ ! -f %s ]; do sleep 0.05; done`, flag),
		`echo '::group::Build it'`,
		`echo compiling`,
		`sleep 0.6`,
		`echo '::endgroup::'`,
		`printf '\033[0Ksection_start:0:tests[collapsed=true]\r\033[0K\033[36;1mRunning tests\033[0;m\n'`,
		`printf 'section_start:0:unit\r\033[0KUnit tests\n'`,
		`echo ok`,
		`printf 'section_end:0:unit\r\033[0K\n'`,
		`printf '\033[0Ksection_end:0:tests\r\033[0K\n'`,
		`echo '::group::left open'`,
		`printf 'the end'`,
	}, "\n")
	r := spawn(t, m.Client(1), "t", "sh", "-c", script)
	waitTask(t, m.Client(1), r.Job, r.Task, "running")
	for _, i := range []int{0, 1} {
		_, err := m.Client(i).LogSections(ctx, r.Task, 0)
		if !api.IsCode(err, api.CodeConflict) || !strings.Contains(err.Error(), "available once the attempt ends") {
			t.Errorf("sections through node%d while the task runs: %v; want a 409 saying they come once the attempt ends", i, err)
		}
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkJob(t, m.WaitJob(1, r.Job, waitLong), "closed", "passed", "")
	waitSealed(t, m, r.Task)

	got, err := m.Client(1).LogSections(ctx, r.Task, 0)
	if err != nil {
		t.Fatalf("sections through node1, which did not run the task: %v", err)
	}
	// Line numbers as the log has them (the node's own notes, "[ourci]
	// ...", come before and after the task's output; the first quotes the
	// script, markers and all, not at the start of its line).
	rc, err := m.Client(1).Log(ctx, r.Task, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	line := func(marker string) int64 {
		for i, l := range lines {
			if strings.HasPrefix(l, marker) {
				return int64(i + 1)
			}
		}
		t.Fatalf("no line %q in the log:\n%s", marker, b)
		return 0
	}
	n := int64(len(lines))
	type want struct {
		name, title, style string
		first, last        int64
		depth              int
		open, collapsed    bool
	}
	wants := []want{
		{"Build it", "Build it", "github", line("::group::Build it"), line("::endgroup::"), 0, false, false},
		{"tests", "Running tests", "gitlab", line("\x1b[0Ksection_start:0:tests"), line("\x1b[0Ksection_end:0:tests"), 0, false, true},
		{"unit", "Unit tests", "gitlab", line("section_start:0:unit"), line("section_end:0:unit"), 1, false, false},
		{"left open", "left open", "github", line("::group::left open"), n, 0, true, false},
	}
	if wants[0].last != wants[0].first+2 || wants[1].first != wants[0].last+1 {
		t.Fatalf("the log is not what the task printed:\n%s", b)
	}
	if got.SchemaVersion != api.SchemaVersion || got.Task != r.Task || got.Attempt != 1 || got.Lines != n || got.Truncated {
		t.Errorf("answer: schema %d task %s attempt %d lines %d truncated %v; want %d %s 1 %d false", got.SchemaVersion, got.Task, got.Attempt, got.Lines, got.Truncated, api.SchemaVersion, r.Task, n)
	}
	t.Logf("sections: %+v", got.Sections)
	if len(got.Sections) != len(wants) {
		t.Fatalf("%d sections, want %d: %+v", len(got.Sections), len(wants), got.Sections)
	}
	for i, w := range wants {
		s := got.Sections[i]
		g := want{s.Name, s.Title, s.Style, s.FirstLine, s.LastLine, s.Depth, s.Open, s.Collapsed}
		if g != w {
			t.Errorf("section %d: got %+v, want %+v", i, g, w)
		}
		if s.Start.IsZero() || s.End.Before(s.Start) || s.DurationMs != s.End.Sub(s.Start).Milliseconds() {
			t.Errorf("section %d (%s): from %v to %v, %d ms", i, s.Name, s.Start, s.End, s.DurationMs)
		}
		if s.Start.Year() < 2000 {
			t.Errorf("section %d (%s) starts at %v: the marker's forged time, not the line's arrival", i, s.Name, s.Start)
		}
	}
	if d := got.Sections[0].Duration(); d < 500*time.Millisecond || d > waitLong {
		t.Errorf("section %q lasted %v: want the 0.6 s the task slept in it", got.Sections[0].Name, d)
	}
	if d := got.Sections[2].Duration(); d > 500*time.Millisecond {
		t.Errorf("section %q lasted %v: it has no pause", got.Sections[2].Name, d)
	}

	// The same through the node that ran it, and once it is dead through
	// the others (node2 may have to fetch the blob from a holder).
	if same, err := m.Client(0).LogSections(ctx, r.Task, 1); err != nil || !reflect.DeepEqual(same, got) {
		t.Errorf("sections through node0, which ran it: %v\n%+v\nwant\n%+v", err, same, got)
	}
	// The task's web page, through node2, lists them, linked to their
	// lines, and gives each line its number and arrival time.
	_, _, page := uiGet(t, m.Nodes[2].URL(), "/tasks/"+r.Task, m.Secret.ClusterToken())
	for _, want := range []string{
		fmt.Sprintf(`<a href="#L%d">Build it</a>`, wants[0].first),
		fmt.Sprintf(`<a href="#L%d">unit</a> <span class="muted">Unit tests</span>`, wants[2].first),
		fmt.Sprintf(`<span class="l" id="L%d"><a class="n" href="#L%[1]d">%[1]d</a><time class="ts" datetime="`, wants[0].first),
		`id="stamps"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the task's page through node2: no %q in\n%s", want, page)
		}
	}
	m.Nodes[0].Kill()
	for _, i := range []int{1, 2} {
		if same, err := m.Client(i).LogSections(ctx, r.Task, 0); err != nil || !reflect.DeepEqual(same, got) {
			t.Errorf("sections through node%d after node0 died: %v\n%+v\nwant\n%+v", i, err, same, got)
		}
	}
	if _, err := m.Client(1).LogSections(ctx, r.Task, 2); !api.IsCode(err, api.CodeNotFound) {
		t.Errorf("sections of attempt 2, which never ran: %v, want a 404", err)
	}
}
