package web

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// Duration is a duration as a page shows it. A Live one is still growing:
// the page's script advances it every second from Ms.
type Duration struct {
	Text string
	Ms   int64
	Live bool
}

// span is the time from a to b; a zero b means it still runs (until now).
func span(a, b, now time.Time) Duration {
	if a.IsZero() {
		return Duration{Text: "–"}
	}
	live := b.IsZero()
	if live {
		b = now
	}
	d := max(b.Sub(a), 0)
	return Duration{Text: FormatDuration(d), Ms: d.Milliseconds(), Live: live}
}

// FormatDuration writes d the way the pages show it: 850ms, 4.2s, 3m07s,
// 2h05m. The page's script formats live durations the same way.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", float64(d.Milliseconds()/100)/10)
	case d < time.Hour:
		s := int64(d / time.Second)
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		m := int64(d / time.Minute)
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
}

// ago says how long before now t was.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := now.Sub(t)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// stamp is an absolute time for a title attribute.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// SourceView is a job's source as pages show it.
type SourceView struct {
	Repo      string // short: host/owner/name
	RepoURL   string // a browsable URL, when the repository has one
	Branch    string
	SHA       string
	Short     string
	CommitURL string
	PR        int
	PRURL     string
}

func sourceView(s raftfsm.Source) SourceView {
	v := SourceView{Repo: s.Repo, Branch: s.Branch, SHA: s.SHA, PR: s.PR}
	if len(s.SHA) > 7 {
		v.Short = s.SHA[:7]
	} else {
		v.Short = s.SHA
	}
	if u, err := url.Parse(s.Repo); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		u.User = nil
		u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), ".git")
		u.RawQuery, u.Fragment = "", ""
		v.RepoURL = u.String()
		v.Repo = strings.TrimPrefix(u.Host+u.Path, "github.com/")
		if s.SHA != "" {
			v.CommitURL = v.RepoURL + "/commit/" + url.PathEscape(s.SHA)
		}
		if s.PR > 0 {
			v.PRURL = v.RepoURL + "/pull/" + strconv.Itoa(s.PR)
		}
	}
	return v
}

// JobRow is a job in the jobs list.
type JobRow struct {
	J      api.JobView
	Source SourceView
	Dur    Duration
	Ago    string
	Stamp  string
}

func jobRow(j api.JobView, now time.Time) JobRow {
	return JobRow{J: j, Source: sourceView(j.Source), Dur: span(j.CreatedAt, j.ClosedAt, now), Ago: ago(j.CreatedAt, now), Stamp: stamp(j.CreatedAt)}
}

// TaskRow is a task in a job's tree.
type TaskRow struct {
	T        api.TaskView
	Depth    int
	Dur      Duration
	Args     string // on one line, abbreviated
	ArgsFull string
}

// maxArgs bounds the arguments a row of the tree shows (the task's own
// page shows them all).
const maxArgs = 120

// abbreviate puts s on one line and cuts it to at most n characters.
func abbreviate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// JobBody is the live part of a job's page.
type JobBody struct {
	JobRow
	GitHub *raftfsm.GitHub
	Rows   []TaskRow
	Blobs  []BlobRow
	Index  uint64
}

// BlobRow is a blob a job names.
type BlobRow struct {
	Blob
	Size  string
	Short string
}

func jobBody(j Job, now time.Time) JobBody {
	b := JobBody{JobRow: jobRow(j.Job, now), GitHub: j.Job.GitHub, Index: j.Index}
	for _, t := range taskTree(j.Tasks) {
		t.Dur = span(t.T.StartedAt, t.T.FinishedAt, now)
		t.ArgsFull = shellJoin(t.T.Args)
		t.Args = abbreviate(t.ArgsFull, maxArgs)
		b.Rows = append(b.Rows, t)
	}
	for _, bl := range j.Blobs {
		short := strings.TrimPrefix(bl.Hash, "sha256:")
		if len(short) > 12 {
			short = short[:12]
		}
		b.Blobs = append(b.Blobs, BlobRow{Blob: bl, Size: FormatBytes(bl.Size), Short: short})
	}
	return b
}

// taskTree orders tasks depth first, each under its parent in spawn order.
// A task whose parent is not in the list is shown as a root.
func taskTree(tasks []api.TaskView) []TaskRow {
	have := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		have[t.ID] = true
	}
	kids := map[string][]api.TaskView{}
	var roots []api.TaskView
	for _, t := range tasks {
		if t.Parent == "" || !have[t.Parent] {
			roots = append(roots, t)
		} else {
			kids[t.Parent] = append(kids[t.Parent], t)
		}
	}
	rows := make([]TaskRow, 0, len(tasks))
	seen := make(map[string]bool, len(tasks))
	var walk func(t api.TaskView, depth int)
	walk = func(t api.TaskView, depth int) {
		if seen[t.ID] {
			return // a cycle cannot happen in the ledger; be safe anyway
		}
		seen[t.ID] = true
		rows = append(rows, TaskRow{T: t, Depth: depth})
		for _, k := range kids[t.ID] {
			walk(k, depth+1)
		}
	}
	for _, t := range roots {
		walk(t, 0)
	}
	return rows
}

// TaskHead is the live summary on a task's page.
type TaskHead struct {
	T      api.TaskView
	Job    string
	Dur    Duration
	Args   string
	Stamps map[string]string
}

func taskHead(t Task, now time.Time) TaskHead {
	return TaskHead{T: t.Task, Job: t.Job, Dur: span(t.Task.StartedAt, t.Task.FinishedAt, now), Args: shellJoin(t.Task.Args),
		Stamps: map[string]string{"created": stamp(t.Task.CreatedAt), "started": stamp(t.Task.StartedAt), "finished": stamp(t.Task.FinishedAt)}}
}

// shellJoin writes args as a shell would read them back.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// FormatBytes writes n in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
