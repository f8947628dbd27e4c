package github

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	gogithub "github.com/google/go-github/v60/github"
)

// Check run statuses and conclusions OurCI sends.
const (
	CheckInProgress = "in_progress"
	CheckCompleted  = "completed"

	ConclusionSuccess        = "success"
	ConclusionFailure        = "failure"
	ConclusionCancelled      = "cancelled"
	ConclusionTimedOut       = "timed_out"
	ConclusionActionRequired = "action_required"
	ConclusionNeutral        = "neutral"
)

// Limits GitHub puts on a check run's output.
const (
	// MaxAnnotationsPerRequest is how many annotations one create or update
	// request may carry; Update sends more in further requests.
	MaxAnnotationsPerRequest = 50
	// MaxOutputText bounds output.summary and output.text (characters).
	MaxOutputText = 65535
	maxTitle      = 255
	maxAnnotation = 64 << 10
)

// Checks creates and updates check runs through go-github v60 (Checks
// API); it needs GitHub App authentication (NewChecks). Safe for
// concurrent use; set the fields before the first call.
type Checks struct {
	Client  *gogithub.Client
	Name    string // the check run's name, default "ourci" (what branch protection requires)
	Retries int
	Backoff time.Duration
	Sleep   func(ctx context.Context, d time.Duration) error
}

// NewChecks reports check runs as app, with each repository's
// installation token.
func NewChecks(app *App) *Checks {
	return &Checks{Client: app.Client(), Name: DefaultContext, Retries: defaultRetries, Backoff: defaultBackoff, Sleep: SleepContext}
}

func (c *Checks) name() string {
	if c.Name == "" {
		return DefaultContext
	}
	return c.Name
}

// Output is a check run's output.
type Output struct {
	Title, Summary, Text string
	Annotations          []Annotation
}

// Annotation points at a line (or a column range of one) of a file in
// the repository.
type Annotation struct {
	Path                    string
	StartLine, EndLine      int
	StartColumn, EndCol     int    // 0: none
	Level                   string // notice, warning, failure (default failure)
	Title, Message, Details string
}

// Find returns the ID of this check's run on sha whose external_id is
// externalID (OurCI's job ID), 0 if there is none: a leader that created
// one and failed before the ledger recorded it left it for the next leader
// to adopt.
func (c *Checks) Find(ctx context.Context, owner, repo, sha, externalID string) (int64, error) {
	if err := checkCommit(owner, repo, sha); err != nil {
		return 0, err
	}
	var id int64
	opts := &gogithub.ListCheckRunsOptions{CheckName: gogithub.String(c.name()), Filter: gogithub.String("all"), ListOptions: gogithub.ListOptions{PerPage: 100}}
	err := c.policy().do(ctx, func() (*gogithub.Response, error) {
		res, resp, err := c.Client.Checks.ListCheckRunsForRef(ctx, owner, repo, sha, opts)
		if err == nil {
			for _, r := range res.CheckRuns {
				if r.GetExternalID() == externalID && id == 0 {
					id = r.GetID()
				}
			}
		}
		return resp, err
	})
	if err != nil {
		return 0, fmt.Errorf("github: list check runs of %s/%s@%s: %w", owner, repo, shortSHA(sha), err)
	}
	return id, nil
}

// Create starts a check run on sha, in_progress, with externalID (the job
// ID) and detailsURL (its page), and returns its ID.
func (c *Checks) Create(ctx context.Context, owner, repo, sha, externalID, detailsURL string, out Output, started time.Time) (int64, error) {
	if err := checkCommit(owner, repo, sha); err != nil {
		return 0, err
	}
	opts := gogithub.CreateCheckRunOptions{
		Name: c.name(), HeadSHA: sha, ExternalID: gogithub.String(externalID),
		Status: gogithub.String(CheckInProgress), Output: out.gh(nil),
	}
	if detailsURL != "" {
		opts.DetailsURL = gogithub.String(detailsURL)
	}
	if !started.IsZero() {
		opts.StartedAt = &gogithub.Timestamp{Time: started}
	}
	var id int64
	err := c.policy().do(ctx, func() (*gogithub.Response, error) {
		r, resp, err := c.Client.Checks.CreateCheckRun(ctx, owner, repo, opts)
		if err == nil {
			id = r.GetID()
		}
		return resp, err
	})
	if err != nil {
		return 0, fmt.Errorf("github: create check run on %s/%s@%s: %w", owner, repo, shortSHA(sha), err)
	}
	if id == 0 {
		return 0, fmt.Errorf("github: create check run on %s/%s@%s: %w: answer without an id", owner, repo, shortSHA(sha), ErrPermanent)
	}
	return id, nil
}

// Update sets check run id's status ("in_progress", or "completed" with
// conclusion) and output. GitHub takes at most 50 annotations a request:
// the ones past the first 50 go first, 50 at a time, in requests that
// change only the output, and the last request sets the status, so the
// run completes with all its annotations.
func (c *Checks) Update(ctx context.Context, owner, repo string, id int64, status, conclusion string, out Output, completed time.Time) error {
	if !validName(owner) || !validName(repo) || id <= 0 {
		return fmt.Errorf("%w: check run %d of %q/%q", ErrPermanent, id, owner, repo)
	}
	switch {
	case status == CheckInProgress && conclusion == "":
	case status == CheckCompleted && conclusion != "":
	default:
		return fmt.Errorf("%w: check run status %q with conclusion %q", ErrPermanent, status, conclusion)
	}
	anns := out.Annotations
	var batches [][]Annotation
	for len(anns) > MaxAnnotationsPerRequest {
		batches = append(batches, anns[:MaxAnnotationsPerRequest])
		anns = anns[MaxAnnotationsPerRequest:]
	}
	for _, b := range batches {
		opts := gogithub.UpdateCheckRunOptions{Name: c.name(), Output: out.gh(b)}
		if err := c.update(ctx, owner, repo, id, opts); err != nil {
			return err
		}
	}
	opts := gogithub.UpdateCheckRunOptions{Name: c.name(), Status: gogithub.String(status), Output: out.gh(anns)}
	if status == CheckCompleted {
		opts.Conclusion = gogithub.String(conclusion)
		if !completed.IsZero() {
			opts.CompletedAt = &gogithub.Timestamp{Time: completed}
		}
	}
	return c.update(ctx, owner, repo, id, opts)
}

func (c *Checks) update(ctx context.Context, owner, repo string, id int64, opts gogithub.UpdateCheckRunOptions) error {
	err := c.policy().do(ctx, func() (*gogithub.Response, error) {
		_, resp, err := c.Client.Checks.UpdateCheckRun(ctx, owner, repo, id, opts)
		return okIfAccepted(resp, err)
	})
	if err != nil {
		return fmt.Errorf("github: update check run %d on %s/%s: %w", id, owner, repo, err)
	}
	return nil
}

func (c *Checks) policy() retryPolicy { return newPolicy(c.Retries, c.Backoff, c.Sleep) }

// gh is the output with annotations anns, cut to GitHub's limits.
func (o Output) gh(anns []Annotation) *gogithub.CheckRunOutput {
	out := &gogithub.CheckRunOutput{
		Title:   gogithub.String(Truncate(o.Title, maxTitle)),
		Summary: gogithub.String(Truncate(o.Summary, MaxOutputText)),
	}
	if o.Text != "" {
		out.Text = gogithub.String(Truncate(o.Text, MaxOutputText))
	}
	for _, a := range anns {
		level := a.Level
		if level == "" {
			level = "failure"
		}
		end := max(a.EndLine, a.StartLine)
		ga := &gogithub.CheckRunAnnotation{
			Path: gogithub.String(a.Path), StartLine: gogithub.Int(a.StartLine), EndLine: gogithub.Int(end),
			AnnotationLevel: gogithub.String(level), Message: gogithub.String(Truncate(a.Message, maxAnnotation)),
		}
		if a.StartColumn > 0 && end == a.StartLine {
			ga.StartColumn = gogithub.Int(a.StartColumn)
			ga.EndColumn = gogithub.Int(max(a.EndCol, a.StartColumn))
		}
		if a.Title != "" {
			ga.Title = gogithub.String(Truncate(a.Title, maxTitle))
		}
		if a.Details != "" {
			ga.RawDetails = gogithub.String(Truncate(a.Details, maxAnnotation))
		}
		out.Annotations = append(out.Annotations, ga)
	}
	return out
}

// errorLine matches a compiler-style error: "path:line: error..." or
// "path:line:col: error..." (gcc, clang, many linters; also
// "fatal error").
var errorLine = regexp.MustCompile(`^\s*([^\s:][^:]*?):(\d+):(?:(\d+):)?\s*((?:fatal )?error\b.*)$`)

// LogAnnotations reads failure annotations from a failed task's log: each
// "file:line: error..." or "file:line:col: error..." line, at most limit of
// them, skipping absolute paths (outside the checkout, which GitHub cannot
// place) and parent references. Paths beginning with "./" lose it; title
// names the task.
func LogAnnotations(log []byte, title string, limit int) []Annotation {
	var out []Annotation
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(log), "\n") {
		if len(out) >= limit {
			break
		}
		line = strings.TrimRight(line, "\r")
		if len(line) > 4096 {
			continue
		}
		m := errorLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path := strings.TrimPrefix(m[1], "./")
		if strings.HasPrefix(path, "/") || strings.HasPrefix(path, "../") || strings.Contains(path, "/../") || path == "" {
			continue
		}
		ln, err := strconv.Atoi(m[2])
		if err != nil || ln <= 0 {
			continue
		}
		col := 0
		if m[3] != "" {
			col, _ = strconv.Atoi(m[3])
		}
		if seen[line] {
			continue
		}
		seen[line] = true
		out = append(out, Annotation{Path: path, StartLine: ln, EndLine: ln, StartColumn: col, EndCol: col,
			Level: "failure", Title: title, Message: strings.TrimSpace(m[4])})
	}
	return out
}
