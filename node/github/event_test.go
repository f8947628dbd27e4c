package github_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

var (
	sha1 = strings.Repeat("a1", 20)
	sha2 = strings.Repeat("b2", 20)
)

func TestParsePullRequest(t *testing.T) {
	for _, action := range []string{"opened", "synchronize", "reopened", "closed", "edited"} {
		for _, fork := range []bool{false, true} {
			body := githubtest.PullRequest(action, "acme", "widget", 12, sha1, "fix/login", fork)
			e, err := github.Parse("pull_request", "guid-1", body)
			if err != nil {
				t.Fatalf("%s fork=%v: %v", action, fork, err)
			}
			want := github.Event{
				Delivery: "guid-1", Kind: "pull_request", Action: action,
				Repo: github.Repo{Owner: "acme", Name: "widget", FullName: "acme/widget",
					CloneURL: "https://github.com/acme/widget.git", HTMLURL: "https://github.com/acme/widget"},
				PR: 12, HeadSHA: sha1, HeadRef: "fix/login", HeadRepo: "acme/widget",
				Author: github.Author{Login: "acme"}, Ref: "refs/pull/12/head", BaseRef: "main",
				Updated: githubtest.PullRequestTime,
			}
			if fork {
				want.HeadRepo, want.Fork, want.Author.Login = "contributor/widget", true, "contributor"
			}
			if e != want {
				t.Errorf("%s fork=%v:\n got %+v\nwant %+v", action, fork, e, want)
			}
		}
	}
}

func TestParsePullRequestDeletedFork(t *testing.T) {
	var doc map[string]any
	json.Unmarshal(githubtest.PullRequest("synchronize", "acme", "widget", 3, sha1, "x", true), &doc)
	doc["pull_request"].(map[string]any)["head"].(map[string]any)["repo"] = nil
	body, _ := json.Marshal(doc)
	e, err := github.Parse("pull_request", "d", body)
	if err != nil || !e.Fork || e.HeadRepo != "" || e.Repo.FullName != "acme/widget" {
		t.Fatalf("deleted fork: %+v, %v", e, err)
	}
}

func TestParsePush(t *testing.T) {
	body := githubtest.Push("acme", "widget", "refs/heads/main", sha2, "dev@example.com")
	e, err := github.Parse("push", "guid-2", body)
	want := github.Event{
		Delivery: "guid-2", Kind: "push",
		Repo: github.Repo{Owner: "acme", Name: "widget", FullName: "acme/widget",
			CloneURL: "https://github.com/acme/widget.git", HTMLURL: "https://github.com/acme/widget"},
		HeadSHA: sha2, HeadRef: "main", HeadRepo: "acme/widget", Ref: "refs/heads/main",
		Author: github.Author{Name: "dev", Email: "dev@example.com", Login: "acme"},
	}
	if err != nil || e != want {
		t.Fatalf("push:\n got %+v, %v\nwant %+v", e, err, want)
	}

	e, err = github.Parse("push", "guid-3", githubtest.Push("acme", "widget", "refs/heads/old", githubtest.ZeroSHA, "dev@example.com"))
	if err != nil || !e.Deleted || e.HeadSHA != "" || e.HeadRef != "old" {
		t.Fatalf("deletion: %+v, %v", e, err)
	}

	e, err = github.Parse("push", "guid-4", githubtest.Push("acme", "widget", "refs/tags/v1.2.0", sha2, "dev@example.com"))
	if err != nil || e.Tag != "v1.2.0" || e.HeadRef != "" || e.Ref != "refs/tags/v1.2.0" {
		t.Fatalf("tag: %+v, %v", e, err)
	}
}

func TestParseFormEncoded(t *testing.T) {
	doc := githubtest.PullRequest("opened", "acme", "widget", 5, sha1, "f", false)
	form := "payload=" + url.QueryEscape(string(doc))
	a, err1 := github.Parse("pull_request", "d", doc)
	b, err2 := github.Parse("pull_request", "d", []byte(form))
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("form body differs: %+v %v / %+v %v", a, err1, b, err2)
	}
}

func TestParsePingAndUnknown(t *testing.T) {
	e, err := github.Parse("ping", "p", githubtest.Ping("acme", "widget"))
	if err != nil || e.Kind != "ping" || e.Repo.FullName != "acme/widget" {
		t.Fatalf("ping: %+v, %v", e, err)
	}
	e, err = github.Parse("issues", "u", []byte("not even json"))
	if err != nil || e != (github.Event{Kind: "issues", Delivery: "u"}) {
		t.Fatalf("unknown: %+v, %v", e, err)
	}
}

func TestParseMalformed(t *testing.T) {
	pr := string(githubtest.PullRequest("opened", "acme", "widget", 5, sha1, "feature", false))
	push := string(githubtest.Push("acme", "widget", "refs/heads/main", sha2, "a@b.c"))
	for name, c := range map[string]struct{ kind, delivery, body string }{
		"pr not json":        {"pull_request", "d", "{"},
		"pr trailing junk":   {"pull_request", "d", pr + "x"},
		"pr array":           {"pull_request", "d", "[]"},
		"pr null":            {"pull_request", "d", "null"},
		"pr empty object":    {"pull_request", "d", "{}"},
		"pr no delivery":     {"pull_request", "", pr},
		"pr delivery spaces": {"pull_request", "a b", pr},
		"pr short sha":       {"pull_request", "d", strings.ReplaceAll(pr, sha1, sha1[:7])},
		"pr bad ref":         {"pull_request", "d", strings.ReplaceAll(pr, `"feature"`, `"--upload-pack=x"`)},
		"pr no action":       {"pull_request", "d", strings.Replace(pr, `"action": "opened"`, `"action": ""`, 1)},
		"pr no number":       {"pull_request", "d", strings.ReplaceAll(strings.ReplaceAll(pr, `"number": 5`, `"number": 0`), "/pull/5", "")},
		"pr bad repo name":   {"pull_request", "d", strings.ReplaceAll(pr, "acme/widget", "acme/../x")},
		"pr bad clone url":   {"pull_request", "d", strings.ReplaceAll(pr, "https://github.com/acme/widget.git", "file:///etc")},
		"push not json":      {"push", "d", "<xml/>"},
		"push no after":      {"push", "d", strings.Replace(push, `"after": "`+sha2+`"`, `"after": ""`, 1)},
		"push other ref":     {"push", "d", strings.Replace(push, "refs/heads/main", "refs/notes/x", 1)},
		"push bad branch":    {"push", "d", strings.Replace(push, "refs/heads/main", "refs/heads/a..b", 1)},
		"push no repo":       {"push", "d", strings.Replace(push, `"repository"`, `"repo_gone"`, 1)},
		"ping not json":      {"ping", "d", "zen"},
		"form two payloads":  {"push", "d", "payload=%7B%7D&payload=%7B%7D"},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := github.Parse(c.kind, c.delivery, []byte(c.body))
			if !errors.Is(err, github.ErrPayload) {
				t.Fatalf("Parse = %+v, %v; want ErrPayload", e, err)
			}
			t.Log(err)
		})
	}
}
