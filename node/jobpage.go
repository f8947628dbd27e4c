package node

import (
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ourci/ourci/node/api"
)

// uiAuth admits a browser: HTTP Basic auth whose password is an API token
// (any user name), or a bearer token as the API takes it.
func (n *Node) uiAuth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); ok {
			r.Header.Set("Authorization", "Bearer "+pw)
		}
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="ourci: any user name, an API token as password (ourci-node token)"`)
			http.Error(w, "401: give an API token as the password", http.StatusUnauthorized)
			return
		}
		n.auth(h)(w, r)
	}
}

var jobPage = template.Must(template.New("job").Funcs(template.FuncMap{
	"dur": func(a, b time.Time) string {
		if a.IsZero() {
			return "-"
		}
		if b.IsZero() {
			b = time.Now()
		}
		return b.Sub(a).Round(time.Millisecond).String()
	},
	"indent": func(depth int) string { return strings.Repeat("\u00a0\u00a0\u00a0", depth) },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ourci job {{.Job.ID}}</title>
<style>body{font-family:system-ui,sans-serif;margin:1rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #ddd;font-size:.9rem}
.passed{color:#17803d}.failed,.timed_out,.lost{color:#c0262d}.cancelled{color:#7a7a7a}.running,.assigned{color:#1b5fd1}</style></head>
<body><h1>job {{.Job.ID}} <span class="{{.Job.Status}}">{{.Job.Status}}</span></h1>
<p>{{.Job.State}} · {{.Job.Tasks}} tasks: {{.Job.Passed}} passed, {{.Job.Failed}} failed, {{.Job.Open}} open{{if .Job.Reason}} · {{.Job.Reason}}{{end}}
{{if .Job.Source.Repo}}<br>{{.Job.Source.Repo}} {{.Job.Source.Branch}} {{.Job.Source.SHA}}{{if .Job.Source.PR}} (pull request #{{.Job.Source.PR}}){{end}}{{end}}</p>
<table><tr><th>task</th><th>state</th><th>node</th><th>attempt</th><th>duration</th><th>exit</th><th>topic</th><th>args</th></tr>
{{range .Rows}}<tr><td>{{indent .Depth}}{{.T.ID}}</td><td class="{{.T.State}}">{{.T.State}}{{if .T.Waiting}} ({{.T.Waiting}}){{end}}</td><td>{{.T.Node}}</td><td>{{.T.Attempt}}</td>
<td>{{dur .T.StartedAt .T.FinishedAt}}</td><td>{{if .T.ExitCode}}{{.T.ExitCode}}{{end}}</td><td>{{.T.Topic}}</td><td>{{range .T.Args}}{{.}} {{end}}</td></tr>
{{end}}</table></body></html>`))

type jobRow struct {
	T     api.TaskView
	Depth int
}

// handleJobPage renders a job's task tree for a browser.
func (n *Node) handleJobPage(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	if !n.mayRead(p, id) {
		http.Error(w, "403: a task token reads only its own job", http.StatusForbidden)
		return
	}
	d, ok := n.jobDetail(id)
	if !ok {
		http.Error(w, "404: no job "+id, http.StatusNotFound)
		return
	}
	kids := map[string][]api.TaskView{}
	var roots []api.TaskView
	for _, t := range d.Tasks {
		if t.Parent == "" {
			roots = append(roots, t)
		} else {
			kids[t.Parent] = append(kids[t.Parent], t)
		}
	}
	var rows []jobRow
	var walk func(t api.TaskView, depth int)
	walk = func(t api.TaskView, depth int) {
		rows = append(rows, jobRow{T: t, Depth: depth})
		for _, k := range kids[t.ID] {
			walk(k, depth+1)
		}
	}
	for _, t := range roots {
		walk(t, 0)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	jobPage.Execute(w, struct {
		Job  api.JobView
		Rows []jobRow
	}{d.Job, rows})
}
