package github

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event kinds (X-GitHub-Event) that OurCI reads.
const (
	KindPing        = "ping"
	KindPullRequest = "pull_request"
	KindPush        = "push"
)

// Event is what OurCI needs from a webhook delivery.
type Event struct {
	Delivery string // X-GitHub-Delivery
	Kind     string // X-GitHub-Event: "ping", "pull_request", "push", other
	Action   string // pull_request: opened, synchronize, reopened, closed, ...
	Repo     Repo   // base repository (owner/name, clone URL, html URL)
	PR       int    // pull request number (0 for push)
	HeadSHA  string // the commit to build ("" for a deleted branch)
	HeadRef  string // branch name (push: refs/heads/X → X; "" for a tag push)
	HeadRepo string // full name of the head repository (forks differ from Repo.FullName; "" if the fork was deleted)
	Fork     bool   // head repo is not the base repo (a fork, or a deleted one)
	Author   Author // head commit's author (push); for a pull request only Login (the PR's user)
	Deleted  bool   // push: branch or tag deleted (after = 000…)

	// Ref is the ref of Repo that holds HeadSHA: for a push the ref as sent
	// (refs/heads/X, refs/tags/Y), for a pull request refs/pull/N/head,
	// which GitHub keeps on the base repository also for forks.
	Ref string
	// Tag is the tag's name for a push of refs/tags/X (HeadRef is then "").
	Tag string
	// BaseRef is the branch a pull request targets.
	BaseRef string
	// Updated is a pull request's updated_at (UTC; zero when absent or
	// malformed): GitHub moves it on every push to the pull request, and
	// the signature covers it, so a replayed body keeps its old time.
	Updated time.Time
}

// Repo names a GitHub repository.
type Repo struct{ Owner, Name, FullName, CloneURL, HTMLURL string }

// Author is the person a notification goes to.
type Author struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Login string `json:"login,omitempty"`
}

// Parse decodes a verified delivery. kind is X-GitHub-Event, delivery is
// X-GitHub-Delivery. The body may be JSON or GitHub's form encoding
// (payload=...). Unknown kinds return an Event with only Kind and Delivery
// set and no error. Malformed JSON, or a pull_request or push lacking a
// field OurCI needs (or carrying a malformed name, SHA or ref), is an error
// wrapping ErrPayload; so is a pull_request or push without a delivery id,
// since deliveries are deduplicated by it.
func Parse(kind, delivery string, body []byte) (Event, error) {
	e := Event{Kind: kind, Delivery: delivery}
	switch kind {
	case KindPing, KindPullRequest, KindPush:
	default:
		return e, nil
	}
	doc, ok := jsonBody(body)
	if !ok {
		return e, fmt.Errorf("%w: %s: form body without one payload field", ErrPayload, kind)
	}
	if kind == KindPing {
		var p pingPayload
		if err := json.Unmarshal(doc, &p); err != nil {
			return e, fmt.Errorf("%w: ping: %v", ErrPayload, err)
		}
		e.Repo, _ = p.Repository.repo() // organisation hooks carry no repository
		return e, nil
	}
	if !validDelivery(delivery) {
		return e, fmt.Errorf("%w: %s: missing or malformed %s", ErrPayload, kind, HeaderDelivery)
	}
	var why string
	if kind == KindPullRequest {
		why = parsePullRequest(&e, doc)
	} else {
		why = parsePush(&e, doc)
	}
	if why != "" {
		return Event{Kind: kind, Delivery: delivery}, fmt.Errorf("%w: %s: %s", ErrPayload, kind, why)
	}
	return e, nil
}

func parsePullRequest(e *Event, doc []byte) string {
	var p prPayload
	if err := json.Unmarshal(doc, &p); err != nil {
		return err.Error()
	}
	pr := p.PullRequest
	switch {
	case p.Action == "":
		return "no action"
	case pr == nil:
		return "no pull_request"
	}
	e.Action = p.Action
	e.PR = p.Number
	if e.PR == 0 {
		e.PR = pr.Number
	}
	if e.PR <= 0 || (pr.Number != 0 && pr.Number != e.PR) {
		return "no pull request number"
	}
	base := pr.Base.Repo
	if base == nil {
		base = p.Repository
	}
	var why string
	if e.Repo, why = base.repo(); why != "" {
		return why
	}
	if !validSHA(pr.Head.SHA) {
		return "pull_request.head.sha is not a commit id"
	}
	if !validRef(pr.Head.Ref) {
		return "pull_request.head.ref is not a branch name"
	}
	e.HeadSHA = strings.ToLower(pr.Head.SHA)
	e.HeadRef = pr.Head.Ref
	e.BaseRef = pr.Base.Ref
	if t, err := time.Parse(time.RFC3339, pr.UpdatedAt); err == nil {
		e.Updated = t.UTC()
	}
	e.Ref = fmt.Sprintf("refs/pull/%d/head", e.PR)
	if h := pr.Head.Repo; h != nil {
		e.HeadRepo = h.FullName
	}
	e.Fork = !sameRepo(pr.Head.Repo, base)
	e.Author.Login = pr.User.Login
	if e.Author.Login == "" {
		e.Author.Login = p.Sender.Login
	}
	return ""
}

func parsePush(e *Event, doc []byte) string {
	var p pushPayload
	if err := json.Unmarshal(doc, &p); err != nil {
		return err.Error()
	}
	var why string
	if e.Repo, why = p.Repository.repo(); why != "" {
		return why
	}
	if !validSHA(p.After) {
		return "after is not a commit id"
	}
	e.Ref = p.Ref
	if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok && validRef(b) {
		e.HeadRef = b
	} else if t, ok := strings.CutPrefix(p.Ref, "refs/tags/"); ok && validRef(t) {
		e.Tag = t
	} else {
		return "ref is neither refs/heads/BRANCH nor refs/tags/TAG"
	}
	e.HeadRepo = e.Repo.FullName
	e.Deleted = p.Deleted || zeroSHA(p.After)
	if !e.Deleted {
		e.HeadSHA = strings.ToLower(p.After)
	}
	e.Author = Author{Name: p.Pusher.Name, Email: p.Pusher.Email, Login: p.Sender.Login}
	if hc := p.HeadCommit; hc != nil && (hc.Author.Name != "" || hc.Author.Email != "") {
		e.Author.Name, e.Author.Email = hc.Author.Name, hc.Author.Email
	}
	if e.Author.Login == "" && p.HeadCommit != nil {
		e.Author.Login = p.HeadCommit.Author.Username
	}
	return ""
}
