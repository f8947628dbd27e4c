package github_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

func FuzzParse(f *testing.F) {
	for _, a := range []string{"opened", "synchronize", "reopened", "closed"} {
		f.Add("pull_request", "d1", githubtest.PullRequest(a, "acme", "widget", 9, sha1, "feature/x", a == "reopened"))
	}
	f.Add("push", "d2", githubtest.Push("acme", "widget", "refs/heads/main", sha2, "a@example.com"))
	f.Add("push", "d3", githubtest.Push("acme", "widget", "refs/heads/gone", githubtest.ZeroSHA, "a@example.com"))
	f.Add("push", "d4", githubtest.Push("acme", "widget", "refs/tags/v1", sha2, "a@example.com"))
	f.Add("ping", "d5", githubtest.Ping("acme", "widget"))
	f.Add("issues", "d6", []byte(`{"action":"opened"}`))
	f.Add("push", "d7", []byte(`payload=%7B%22ref%22%3A1%7D`))
	f.Fuzz(func(t *testing.T, kind, delivery string, body []byte) {
		e, err := github.Parse(kind, delivery, body)
		if err != nil {
			if !errors.Is(err, github.ErrPayload) {
				t.Fatalf("error not wrapping ErrPayload: %v", err)
			}
			return
		}
		if e.Kind != kind || e.Delivery != delivery {
			t.Fatalf("kind/delivery changed: %+v", e)
		}
		ok, reason := github.Trigger(e, []string{"*"})
		if reason == "" {
			t.Fatal("Trigger gave no reason")
		}
		if !ok {
			return
		}
		// Whatever opens a job carries safe names: they become URL paths,
		// environment variables and git arguments.
		if len(e.HeadSHA) != 40 && len(e.HeadSHA) != 64 || strings.Trim(e.HeadSHA, "0123456789abcdef") != "" {
			t.Fatalf("bad head sha %q", e.HeadSHA)
		}
		if e.Repo.Owner == "" || e.Repo.Name == "" || strings.ContainsAny(e.Repo.FullName, " \n\r\x00?#\\") ||
			e.Repo.FullName != e.Repo.Owner+"/"+e.Repo.Name || strings.Contains(e.Repo.FullName, "..") {
			t.Fatalf("bad repo %+v", e.Repo)
		}
		if strings.HasPrefix(e.HeadRef, "-") || strings.ContainsAny(e.HeadRef, " \n\r\x00") {
			t.Fatalf("bad head ref %q", e.HeadRef)
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("It's a Secret to Everybody"), []byte("Hello, World!"),
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add([]byte("k"), []byte(""), "sha1=00")
	f.Add([]byte(""), []byte("x"), "sha256=")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		err := github.Verify(secret, body, header)
		good := githubtest.Sign(secret, body)
		switch {
		case len(secret) == 0 && err == nil:
			t.Fatal("empty secret verified")
		case err != nil && !errors.Is(err, github.ErrSignature):
			t.Fatalf("error not wrapping ErrSignature: %v", err)
		case err == nil && !strings.EqualFold(header, good):
			t.Fatalf("accepted %q, want %q", header, good)
		}
		if len(secret) > 0 {
			if err := github.Verify(secret, body, good); err != nil {
				t.Fatalf("own signature refused: %v", err)
			}
		}
	})
}
