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
	KindCheckRun    = "check_run"
	KindCheckSuite  = "check_suite"
	KindMergeGroup  = "merge_group"
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

	// Key, for check_run, check_suite and merge_group events, is what
	// deduplicates the delivery by content (see the node's eventKey).
	Key string
	// App is the GitHub App whose check run or suite a check_run or
	// check_suite event is about (0: unknown).
	App int64
	// ForkUnknown says Fork is not known: a check_run or check_suite of a
	// fork's branch lists no pull requests, so whose head it is is unsaid.
	ForkUnknown bool
	// RequestedAction is a check_run requested_action's identifier.
	RequestedAction string
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
	case KindPing, KindPullRequest, KindPush, KindCheckRun, KindCheckSuite, KindMergeGroup:
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
	switch kind {
	case KindPullRequest:
		why = parsePullRequest(&e, doc)
	case KindPush:
		why = parsePush(&e, doc)
	case KindCheckRun:
		why = parseCheckRun(&e, doc)
	case KindCheckSuite:
		why = parseCheckSuite(&e, doc)
	case KindMergeGroup:
		why = parseMergeGroup(&e, doc)
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

func parseCheckRun(e *Event, doc []byte) string {
	var p checkRunPayload
	if err := json.Unmarshal(doc, &p); err != nil {
		return err.Error()
	}
	cr := p.CheckRun
	switch {
	case p.Action == "":
		return "no action"
	case cr == nil:
		return "no check_run"
	}
	e.Action = p.Action
	if p.RequestedAction != nil {
		e.RequestedAction = p.RequestedAction.Identifier
	}
	if cr.App != nil {
		e.App = cr.App.ID
	}
	prs := cr.PullRequests
	if len(prs) == 0 {
		prs = cr.CheckSuite.PullRequests
	}
	if why := checkCommon(e, p.Repository, cr.HeadSHA, cr.CheckSuite.HeadBranch, prs, p.Sender); why != "" {
		return why
	}
	e.Key = fmt.Sprintf("%s %s %d %s", KindCheckRun, e.Action, cr.ID, e.HeadSHA)
	return ""
}

func parseCheckSuite(e *Event, doc []byte) string {
	var p checkSuitePayload
	if err := json.Unmarshal(doc, &p); err != nil {
		return err.Error()
	}
	cs := p.CheckSuite
	switch {
	case p.Action == "":
		return "no action"
	case cs == nil:
		return "no check_suite"
	}
	e.Action = p.Action
	if cs.App != nil {
		e.App = cs.App.ID
	}
	if why := checkCommon(e, p.Repository, cs.HeadSHA, cs.HeadBranch, cs.PullRequests, p.Sender); why != "" {
		return why
	}
	// The suite stays the same for a commit; its updated_at moves with
	// each run, so a second re-run is not taken for a replay.
	e.Key = fmt.Sprintf("%s %s %d %s %s", KindCheckSuite, e.Action, cs.ID, e.HeadSHA, cs.UpdatedAt)
	return ""
}

// checkCommon fills what check_run and check_suite share: the repository,
// the head commit, its branch and the pull request (the first listed).
func checkCommon(e *Event, repo *ghRepo, sha string, branch *string, prs []ghPRRef, sender ghUser) string {
	var why string
	if e.Repo, why = repo.repo(); why != "" {
		return why
	}
	if !validSHA(sha) {
		return "head_sha is not a commit id"
	}
	e.HeadSHA = strings.ToLower(sha)
	if branch != nil && *branch != "" {
		if !validRef(*branch) {
			return "head_branch is not a branch name"
		}
		e.HeadRef = *branch
		e.Ref = "refs/heads/" + *branch
	}
	e.HeadRepo, e.ForkUnknown = e.Repo.FullName, true
	for _, pr := range prs {
		if pr.Number <= 0 {
			continue
		}
		e.PR = pr.Number
		e.Ref = fmt.Sprintf("refs/pull/%d/head", pr.Number)
		if validRef(pr.Base.Ref) {
			e.BaseRef = pr.Base.Ref
		}
		if validRef(pr.Head.Ref) {
			e.HeadRef = pr.Head.Ref
		}
		if pr.Head.Repo != nil && pr.Base.Repo != nil {
			e.Fork, e.ForkUnknown = pr.Head.Repo.ID != pr.Base.Repo.ID, false
		}
		break
	}
	e.Author.Login = sender.Login
	return ""
}

func parseMergeGroup(e *Event, doc []byte) string {
	var p mergeGroupPayload
	if err := json.Unmarshal(doc, &p); err != nil {
		return err.Error()
	}
	mg := p.MergeGroup
	switch {
	case p.Action == "":
		return "no action"
	case mg == nil:
		return "no merge_group"
	}
	e.Action = p.Action
	var why string
	if e.Repo, why = p.Repository.repo(); why != "" {
		return why
	}
	if !validSHA(mg.HeadSHA) {
		return "merge_group.head_sha is not a commit id"
	}
	b, ok := strings.CutPrefix(mg.HeadRef, "refs/heads/")
	if !ok || !validRef(b) {
		return "merge_group.head_ref is not refs/heads/BRANCH"
	}
	e.HeadSHA, e.HeadRef, e.Ref, e.HeadRepo = strings.ToLower(mg.HeadSHA), b, mg.HeadRef, e.Repo.FullName
	if base, ok := strings.CutPrefix(mg.BaseRef, "refs/heads/"); ok && validRef(base) {
		e.BaseRef = base
	}
	if hc := mg.HeadCommit; hc != nil {
		e.Author.Name, e.Author.Email = hc.Author.Name, hc.Author.Email
	}
	e.Author.Login = p.Sender.Login
	e.Key = fmt.Sprintf("%s %s %s %s", KindMergeGroup, e.Action, e.Ref, e.HeadSHA)
	return ""
}
