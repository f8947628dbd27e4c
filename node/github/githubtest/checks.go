package githubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CheckRun is a check run as the Server holds it.
type CheckRun struct {
	ID                 int64
	Owner, Repo        string
	HeadSHA            string
	Name               string
	ExternalID         string
	DetailsURL         string
	Status             string // queued, in_progress, completed
	Conclusion         string
	Title, Summary     string
	Text               string
	Annotations        []Annotation
	Actions            []Action
	StartedAt          time.Time
	CompletedAt        time.Time
	Requests           int      // POST and PATCH requests that changed it
	History            []string // Status (and "/"+Conclusion when completed) after each request
	AnnotationsPerCall []int    // annotations each request carried
	Authorization      string   // the last request's Authorization header
}

// Annotation is a check run annotation.
type Annotation struct {
	Path            string `json:"path"`
	StartLine       int    `json:"start_line"`
	EndLine         int    `json:"end_line"`
	StartColumn     *int   `json:"start_column,omitempty"`
	EndColumn       *int   `json:"end_column,omitempty"`
	AnnotationLevel string `json:"annotation_level"`
	Message         string `json:"message"`
	Title           string `json:"title,omitempty"`
	RawDetails      string `json:"raw_details,omitempty"`
}

// Action is a check run's requested action button.
type Action struct {
	Label       string `json:"label"`
	Description string `json:"description"`
	Identifier  string `json:"identifier"`
}

type checkRunIn struct {
	Name        *string    `json:"name"`
	HeadSHA     *string    `json:"head_sha"`
	DetailsURL  *string    `json:"details_url"`
	ExternalID  *string    `json:"external_id"`
	Status      *string    `json:"status"`
	Conclusion  *string    `json:"conclusion"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Output      *struct {
		Title       *string      `json:"title"`
		Summary     *string      `json:"summary"`
		Text        *string      `json:"text"`
		Annotations []Annotation `json:"annotations"`
	} `json:"output"`
	Actions []Action `json:"actions"`
}

// Limits GitHub documents for check runs.
const (
	MaxAnnotationsPerRequest = 50
	MaxSummary               = 65535
	MaxActions               = 3
)

var conclusions = map[string]bool{"action_required": true, "cancelled": true, "failure": true, "neutral": true,
	"success": true, "skipped": true, "stale": true, "timed_out": true}

func checkValidation(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, fmt.Sprintf(
		`{"message":"Invalid request.\n\n%s","errors":[{"resource":"CheckRun","field":%q,"code":"invalid"}],"documentation_url":"https://docs.github.com/rest/checks/runs"}`,
		strings.ReplaceAll(msg, `"`, `'`), field))
}

// apply validates in and applies it to c; a non-empty answer is the
// validation failure (field, message).
func (in *checkRunIn) apply(c *CheckRun) (string, string) {
	if in.Status != nil {
		switch *in.Status {
		case "queued", "in_progress", "completed":
		default:
			return "status", "status is not included in the list"
		}
	}
	if in.Conclusion != nil && *in.Conclusion != "" && !conclusions[*in.Conclusion] {
		return "conclusion", "conclusion is not included in the list"
	}
	if in.DetailsURL != nil && *in.DetailsURL != "" && !validURL(*in.DetailsURL) {
		return "details_url", "details_url must be an http(s) URL"
	}
	if len(in.Actions) > MaxActions {
		return "actions", "no more than 3 actions are allowed"
	}
	for _, a := range in.Actions {
		if len(a.Label) > 20 || len(a.Description) > 40 || len(a.Identifier) > 20 || a.Label == "" || a.Identifier == "" {
			return "actions", "an action's label and identifier take at most 20 characters, its description 40"
		}
	}
	if o := in.Output; o != nil {
		if o.Title == nil || o.Summary == nil {
			return "output", "output needs title and summary"
		}
		if len(*o.Summary) > MaxSummary || (o.Text != nil && len(*o.Text) > MaxSummary) {
			return "output.summary", "summary and text take at most 65535 characters"
		}
		if len(o.Annotations) > MaxAnnotationsPerRequest {
			return "output.annotations", "Only 50 annotations are allowed per request"
		}
		for _, a := range o.Annotations {
			switch {
			case a.Path == "" || a.StartLine <= 0 || a.EndLine < a.StartLine || a.Message == "":
				return "output.annotations", "an annotation needs path, start_line, end_line and message"
			case a.AnnotationLevel != "notice" && a.AnnotationLevel != "warning" && a.AnnotationLevel != "failure":
				return "output.annotations", "annotation_level is not included in the list"
			case (a.StartColumn != nil || a.EndColumn != nil) && a.StartLine != a.EndLine:
				return "output.annotations", "start_column and end_column are only valid when start_line equals end_line"
			}
		}
	}
	if in.Name != nil {
		c.Name = *in.Name
	}
	if in.DetailsURL != nil {
		c.DetailsURL = *in.DetailsURL
	}
	if in.ExternalID != nil {
		c.ExternalID = *in.ExternalID
	}
	if in.Conclusion != nil && *in.Conclusion != "" {
		// A conclusion completes the run, as GitHub does.
		c.Status, c.Conclusion = "completed", *in.Conclusion
	}
	if in.Status != nil {
		c.Status = *in.Status
		if c.Status != "completed" {
			c.Conclusion, c.CompletedAt = "", time.Time{}
		}
	}
	if c.Status == "completed" && c.Conclusion == "" {
		return "conclusion", "conclusion is required when status is completed"
	}
	if in.StartedAt != nil {
		c.StartedAt = *in.StartedAt
	}
	if in.CompletedAt != nil {
		c.CompletedAt = *in.CompletedAt
	}
	if o := in.Output; o != nil {
		c.Title, c.Summary = *o.Title, *o.Summary
		if o.Text != nil {
			c.Text = *o.Text
		}
		c.Annotations = append(c.Annotations, o.Annotations...) // GitHub appends them
		c.AnnotationsPerCall = append(c.AnnotationsPerCall, len(o.Annotations))
	} else {
		c.AnnotationsPerCall = append(c.AnnotationsPerCall, 0)
	}
	if in.Actions != nil {
		c.Actions = in.Actions
	}
	h := c.Status
	if c.Status == "completed" {
		h += "/" + c.Conclusion
	}
	c.History = append(c.History, h)
	c.Requests++
	return "", ""
}

func decodeCheckRun(w http.ResponseWriter, r *http.Request) (*checkRunIn, bool) {
	var in checkRunIn
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"message":"Problems parsing JSON","documentation_url":"https://docs.github.com/rest"}`)
		return nil, false
	}
	return &in, true
}

func (s *Server) createCheckRun(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeCheckRun(w, r)
	if !ok {
		return
	}
	if in.Name == nil || *in.Name == "" || in.HeadSHA == nil || !isSHA(strings.ToLower(*in.HeadSHA)) {
		checkValidation(w, "head_sha", "name and head_sha (a full commit id) are required")
		return
	}
	c := &CheckRun{Owner: r.PathValue("owner"), Repo: r.PathValue("repo"), HeadSHA: strings.ToLower(*in.HeadSHA), Status: "queued"}
	if f, msg := in.apply(c); f != "" {
		checkValidation(w, f, msg)
		return
	}
	c.Authorization = r.Header.Get("Authorization")
	s.mu.Lock()
	c.ID = int64(len(s.checks) + 1)
	s.checks = append(s.checks, c)
	body := s.checkJSON(r, c)
	s.changedLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

func (s *Server) updateCheckRun(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeCheckRun(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.checkRun(r)
	if c == nil {
		writeJSON(w, http.StatusNotFound, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/checks/runs#update-a-check-run"}`)
		return
	}
	next := *c
	next.Annotations = append([]Annotation(nil), c.Annotations...)
	next.History = append([]string(nil), c.History...)
	next.AnnotationsPerCall = append([]int(nil), c.AnnotationsPerCall...)
	if f, msg := in.apply(&next); f != "" {
		checkValidation(w, f, msg)
		return
	}
	next.Authorization = r.Header.Get("Authorization")
	*c = next
	body := s.checkJSON(r, c)
	s.changedLocked()
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getCheckRun(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.checkRun(r)
	if c == nil {
		writeJSON(w, http.StatusNotFound, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/checks/runs#get-a-check-run"}`)
		return
	}
	writeJSON(w, http.StatusOK, s.checkJSON(r, c))
}

// listCheckRuns is GET /repos/{owner}/{repo}/commits/{ref}/check-runs
// (ref: a commit id), with ?check_name= and ?filter=latest|all.
func (s *Server) listCheckRuns(w http.ResponseWriter, r *http.Request) {
	owner, repo, ref := r.PathValue("owner"), r.PathValue("repo"), strings.ToLower(r.PathValue("ref"))
	name := r.URL.Query().Get("check_name")
	latest := r.URL.Query().Get("filter") != "all"
	s.mu.Lock()
	defer s.mu.Unlock()
	var runs []json.RawMessage
	seen := map[string]bool{}
	for i := len(s.checks) - 1; i >= 0; i-- {
		c := s.checks[i]
		if !strings.EqualFold(c.Owner, owner) || !strings.EqualFold(c.Repo, repo) || c.HeadSHA != ref || (name != "" && c.Name != name) {
			continue
		}
		if latest && seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		runs = append(runs, json.RawMessage(s.checkJSON(r, c)))
	}
	body, _ := json.Marshal(map[string]any{"total_count": len(runs), "check_runs": append([]json.RawMessage{}, runs...)})
	writeJSON(w, http.StatusOK, string(body))
}

// checkRun finds the request's {owner}/{repo} check run {id} (s.mu held).
func (s *Server) checkRun(r *http.Request) *CheckRun {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 || id > int64(len(s.checks)) {
		return nil
	}
	c := s.checks[id-1]
	if !strings.EqualFold(c.Owner, r.PathValue("owner")) || !strings.EqualFold(c.Repo, r.PathValue("repo")) {
		return nil
	}
	return c
}

func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) checkJSON(r *http.Request, c *CheckRun) string {
	api := "http://" + r.Host
	full := c.Owner + "/" + c.Repo
	var conclusion, completed any
	if c.Status == "completed" {
		conclusion = c.Conclusion
		if !c.CompletedAt.IsZero() {
			completed = c.CompletedAt.UTC().Format(time.RFC3339)
		}
	}
	var started any
	if !c.StartedAt.IsZero() {
		started = c.StartedAt.UTC().Format(time.RFC3339)
	}
	body, _ := json.Marshal(map[string]any{
		"id":           c.ID,
		"node_id":      fmt.Sprintf("CR_kwDO%d", c.ID),
		"head_sha":     c.HeadSHA,
		"external_id":  c.ExternalID,
		"url":          fmt.Sprintf("%s/repos/%s/check-runs/%d", api, full, c.ID),
		"html_url":     fmt.Sprintf("https://github.com/%s/runs/%d", full, c.ID),
		"details_url":  c.DetailsURL,
		"status":       c.Status,
		"conclusion":   conclusion,
		"started_at":   started,
		"completed_at": completed,
		"output": map[string]any{
			"title": c.Title, "summary": c.Summary, "text": c.Text,
			"annotations_count": len(c.Annotations),
			"annotations_url":   fmt.Sprintf("%s/repos/%s/check-runs/%d/annotations", api, full, c.ID),
		},
		"name":          c.Name,
		"check_suite":   map[string]any{"id": fakeID("suite " + full + c.HeadSHA)},
		"app":           map[string]any{"id": 1, "slug": "ourci", "name": "OurCI"},
		"pull_requests": []any{},
	})
	return string(body)
}

// CheckRuns returns copies of the check runs on owner/repo at sha, in
// creation order.
func (s *Server) CheckRuns(owner, repo, sha string) []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CheckRun
	for _, c := range s.checks {
		if strings.EqualFold(c.Owner, owner) && strings.EqualFold(c.Repo, repo) && strings.EqualFold(c.HeadSHA, sha) {
			cp := *c
			cp.Annotations = append([]Annotation(nil), c.Annotations...)
			cp.History = append([]string(nil), c.History...)
			cp.AnnotationsPerCall = append([]int(nil), c.AnnotationsPerCall...)
			out = append(out, cp)
		}
	}
	return out
}

// WaitCheckRun waits until a check run on owner/repo at sha satisfies ok,
// and returns it, or returns ctx's error.
func (s *Server) WaitCheckRun(ctx context.Context, owner, repo, sha string, ok func(CheckRun) bool) (CheckRun, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		runs := s.CheckRuns(owner, repo, sha)
		for _, c := range runs {
			if ok(c) {
				return c, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			var have []string
			for _, c := range runs {
				have = append(have, fmt.Sprintf("%d %s %v", c.ID, c.Name, c.History))
			}
			return CheckRun{}, fmt.Errorf("githubtest: no such check run on %s/%s@%s (have %v): %w", owner, repo, sha, have, ctx.Err())
		}
	}
}
