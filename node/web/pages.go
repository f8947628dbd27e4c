package web

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"

	"github.com/ourci/ourci/node/api"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages holds each page's template set: the layout, the shared fragments
// and the page's own "content".
var pages = parsePages()

// fragments renders the parts the event streams send.
var fragments = pages["job.html"]

var funcs = template.FuncMap{
	"join": strings.Join,
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"jobs.html", "job.html", "task.html", "mesh.html", "error.html"} {
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name))
		out[name] = t
	}
	return out
}

// page is what the layout needs, around a page's own data.
type page struct {
	Title string
	Nav   string // which nav link is current
	Node  string
	Nonce string
	Data  any
}

// render writes a whole page.
func (u *UI) render(w http.ResponseWriter, code int, name, title, nav string, data any) {
	nonce := rand.Text()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'unsafe-inline'; "+
		"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	var b strings.Builder
	if err := pages[name].ExecuteTemplate(&b, "layout", page{Title: title, Nav: nav, Node: u.src.NodeName(), Nonce: nonce, Data: data}); err != nil {
		http.Error(w, "500: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(code)
	io.WriteString(w, b.String())
}

// fragment renders one of the shared fragments (for event streams).
func fragment(name string, data any) (string, error) {
	var b strings.Builder
	err := fragments.ExecuteTemplate(&b, name, data)
	return b.String(), err
}

// fail answers with an error page.
func (u *UI) fail(w http.ResponseWriter, code int, err error) {
	u.render(w, code, "error.html", http.StatusText(code), "", struct {
		Code int
		Text string
		Msg  string
	}{code, http.StatusText(code), err.Error()})
}

var errForbidden = errors.New("a task token sees only its own job")

// jobsPage lists recent jobs, newest first.
func (u *UI) jobsPage(w http.ResponseWriter, r *http.Request, a Access) {
	now := u.src.Now()
	var jobs []api.JobView
	if a.Cluster {
		jobs = u.src.Jobs(maxJobs)
	} else if j, ok := u.src.Job(a.Job); ok {
		jobs = []api.JobView{j.Job}
	}
	rows := make([]JobRow, 0, len(jobs))
	open := 0
	for _, j := range jobs {
		rows = append(rows, jobRow(j, now))
		if j.State == "open" {
			open++
		}
	}
	u.render(w, http.StatusOK, "jobs.html", "Jobs", "jobs", struct {
		Rows []JobRow
		Open int
		Max  int
	}{rows, open, maxJobs})
}

// maxJobs is how many jobs the jobs list shows.
const maxJobs = 100

// jobPage shows a job's task tree, which its event stream keeps current.
func (u *UI) jobPage(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	if !a.MayRead(id) {
		u.fail(w, http.StatusForbidden, errForbidden)
		return
	}
	j, ok := u.src.Job(id)
	if !ok {
		u.fail(w, http.StatusNotFound, fmt.Errorf("no job %s", id))
		return
	}
	body := jobBody(j, u.src.Now())
	u.render(w, http.StatusOK, "job.html", "job "+id, "jobs", struct {
		Body JobBody
		Live bool
	}{body, j.Job.State == "open"})
}

// blob serves a blob the job names.
func (u *UI) blob(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	if !a.MayRead(id) {
		u.fail(w, http.StatusForbidden, errForbidden)
		return
	}
	u.src.ServeBlob(w, r, id, r.PathValue("name"))
}

// maxInlineLog and maxInlineLines bound the output a finished task's page
// shows inline (the raw log has it all).
const (
	maxInlineLog   = 4 << 20
	maxInlineLines = 50000
)

// taskPage shows a task and its log: inline once the task has ended (each
// line with its number, a link to itself and its arrival time, and the
// log's sections), followed through its event stream while it may still
// write.
func (u *UI) taskPage(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	t, ok := u.src.Task(id)
	if !ok {
		u.fail(w, http.StatusNotFound, fmt.Errorf("no task %s", id))
		return
	}
	if !a.MayRead(t.Job) {
		u.fail(w, http.StatusForbidden, errForbidden)
		return
	}
	data := struct {
		Head         TaskHead
		ID           string
		Live         bool
		Lines        []LogLine
		Stamped      bool
		Sections     []SectionRow
		SectionsNote string
		Note         string
		Truncated    bool
	}{Head: taskHead(t, u.src.Now()), ID: id, Live: !t.Task.State.Terminal()}
	if !data.Live {
		lines, truncated, note := u.inlineLog(r.Context(), id)
		data.Lines, data.Truncated, data.Note = renderLines(lines), truncated, note
		for _, l := range data.Lines {
			if l.At != "" {
				data.Stamped = true
				break
			}
		}
		if t.Task.Attempt > 0 {
			secs, err := u.src.LogSections(r.Context(), id, t.Task.Attempt)
			switch {
			case api.IsCode(err, api.CodeConflict):
				data.SectionsNote = "Sections are listed once the log is sealed, a moment after the task ends: reload to see them."
			case err != nil:
				data.SectionsNote = "The log's sections cannot be read now: " + err.Error()
			default:
				data.Sections = sectionRows(secs)
				if secs.Truncated {
					data.SectionsNote = "The log marks more sections than are kept: only the first are listed."
				}
			}
		}
	}
	u.render(w, http.StatusOK, "task.html", "task "+id, "jobs", data)
}

// inlineLog reads a finished task's log for its page: with the lines'
// times when they can be had (not while the log is neither sealed nor
// held as a copy: a moment after the task ends), else plain. note says
// what went wrong, if anything.
func (u *UI) inlineLog(ctx context.Context, id string) (lines []rawLine, truncated bool, note string) {
	rc, err := u.src.StampedLog(ctx, id)
	stamped := err == nil
	if err != nil {
		rc, err = u.src.Log(ctx, id, false)
	}
	if err != nil {
		return nil, false, "the log cannot be read: " + err.Error()
	}
	defer rc.Close()
	lines, truncated, err = readLines(rc, stamped, maxInlineLines, maxInlineLog)
	switch {
	case err != nil:
		note = "the log broke off: " + err.Error()
	case len(lines) == 0:
		note = "no output"
	}
	return lines, truncated, note
}

// readableTask looks up task id for a plain-text answer (a raw log, an
// event stream): a task that is not there or not the caller's to read gets
// a 404 or 403 written to w, and false.
func (u *UI) readableTask(w http.ResponseWriter, id string, a Access) (Task, bool) {
	t, ok := u.src.Task(id)
	if !ok {
		http.Error(w, "404: no task "+id, http.StatusNotFound)
		return Task{}, false
	}
	if !a.MayRead(t.Job) {
		http.Error(w, "403: "+errForbidden.Error(), http.StatusForbidden)
		return Task{}, false
	}
	return t, true
}

// rawLog answers a task's log as plain text (?follow=1 to follow it).
func (u *UI) rawLog(w http.ResponseWriter, r *http.Request, a Access) {
	id := r.PathValue("id")
	if _, ok := u.readableTask(w, id, a); !ok {
		return
	}
	rc, err := u.src.Log(r.Context(), id, r.URL.Query().Get("follow") == "1")
	if err != nil {
		http.Error(w, "502: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	rcw := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		k, err := rc.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			rcw.Flush()
		}
		if err != nil {
			return
		}
	}
}

// MemberRow is a member in the mesh page.
type MemberRow struct {
	api.Member
	BlobBytes string
}

// meshPage shows the members, topics and waiting tasks.
func (u *UI) meshPage(w http.ResponseWriter, r *http.Request, a Access) {
	st := u.src.Status()
	members := make([]MemberRow, 0, len(st.Members))
	for _, m := range st.Members {
		members = append(members, MemberRow{Member: m, BlobBytes: FormatBytes(m.Bytes)})
	}
	var waiting []api.Waiting
	for _, wt := range st.Waiting {
		if a.MayRead(wt.Job) {
			waiting = append(waiting, wt)
		}
	}
	u.render(w, http.StatusOK, "mesh.html", "Mesh", "mesh", struct {
		S       api.Status
		Members []MemberRow
		Waiting []api.Waiting
		At      string
	}{st, members, waiting, stamp(u.src.Now())})
}
