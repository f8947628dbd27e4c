package github_test

import (
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
)

func TestTrigger(t *testing.T) {
	pr := func(action string) github.Event {
		return github.Event{Kind: "pull_request", Action: action, PR: 4, HeadSHA: sha1, HeadRef: "f"}
	}
	push := func(branch string) github.Event {
		return github.Event{Kind: "push", HeadRef: branch, HeadSHA: sha1, Ref: "refs/heads/" + branch}
	}
	deleted := push("main")
	deleted.Deleted, deleted.HeadSHA = true, ""
	tag := github.Event{Kind: "push", Tag: "v1", HeadSHA: sha1, Ref: "refs/tags/v1"}
	main := []string{"main", "release"}
	for _, c := range []struct {
		name     string
		e        github.Event
		branches []string
		want     bool
		reason   string
	}{
		{"pr opened", pr("opened"), nil, true, "#4 opened"},
		{"pr synchronize", pr("synchronize"), nil, true, "synchronize"},
		{"pr reopened", pr("reopened"), nil, true, "reopened"},
		{"pr closed", pr("closed"), main, false, `action "closed" is ignored`},
		{"pr edited", pr("edited"), main, false, "ignored"},
		{"pr labeled", pr("labeled"), main, false, "ignored"},
		{"push listed", push("main"), main, true, "push to main"},
		{"push other listed", push("release"), main, true, "release"},
		{"push not listed", push("feature"), main, false, "not one of the push branches"},
		{"push prefix is not a match", push("main2"), main, false, "not one of"},
		{"push star", push("anything/goes"), []string{"*"}, true, "anything/goes"},
		{"push none configured", push("main"), nil, false, "no push branches"},
		{"push deletion", deleted, []string{"*"}, false, "deletion of branch main"},
		{"tag push", tag, []string{"*"}, false, "not a branch push"},
		{"ping", github.Event{Kind: "ping"}, main, false, "ping"},
		{"unknown", github.Event{Kind: "issues"}, main, false, `event "issues" is ignored`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, reason := github.Trigger(c.e, c.branches)
			if got != c.want || !strings.Contains(reason, c.reason) {
				t.Fatalf("Trigger = %v, %q; want %v, …%q…", got, reason, c.want, c.reason)
			}
		})
	}
}
