package github_test

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/github/githubtest"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckEventFixtures parses the payloads trimmed from GitHub's
// published examples (octokit/webhooks payload-examples).
func TestCheckEventFixtures(t *testing.T) {
	for _, tc := range []struct {
		kind, file string
		trigger    bool
		want       github.Event
	}{
		{"check_run", "check_run.rerequested", true, github.Event{
			Kind: "check_run", Action: "rerequested", HeadSHA: "d6fde92930d4715a2b49857d24b940956b26d2d3", HeadRef: "master",
			Ref: "refs/heads/master", App: 2, ForkUnknown: true, Key: "check_run rerequested 4 d6fde92930d4715a2b49857d24b940956b26d2d3"}},
		{"check_suite", "check_suite.rerequested", true, github.Event{
			Kind: "check_suite", Action: "rerequested", HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", HeadRef: "changes",
			Ref: "refs/pull/2/head", PR: 2, BaseRef: "master", App: 29310,
			Key: "check_suite rerequested 118578147 ec26c3e57ca3a959ca5aad62de7213c562f8c821 2019-05-15T15:21:14Z"}},
		{"merge_group", "merge_group.checks_requested", true, github.Event{
			Kind: "merge_group", Action: "checks_requested", HeadSHA: "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d",
			HeadRef: "gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64", BaseRef: "main",
			Ref: "refs/heads/gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64",
			Key: "merge_group checks_requested refs/heads/gh-readonly-queue/main/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64 2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"}},
		{"check_run", "check_run.requested_action", false, github.Event{
			Kind: "check_run", Action: "requested_action", RequestedAction: "lgtm|26764"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ev, err := github.Parse(tc.kind, "d-1", fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if ok, why := github.Trigger(ev, nil); ok != tc.trigger {
				t.Errorf("trigger: got %v (%s), want %v", ok, why, tc.trigger)
			}
			if !tc.trigger {
				if ev.RequestedAction != tc.want.RequestedAction {
					t.Errorf("requested action: got %q", ev.RequestedAction)
				}
				return
			}
			got := ev
			got.Delivery, got.Repo, got.Author, got.HeadRepo = "", github.Repo{}, github.Author{}, ""
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if ev.Repo.FullName == "" || ev.Repo.CloneURL == "" || ev.Author.Login == "" {
				t.Errorf("repository or sender missing: %+v %+v", ev.Repo, ev.Author)
			}
		})
	}
}

// jsonKeys lists every key path of a JSON document (array elements merged).
func jsonKeys(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out[prefix+"."+k] = true
			jsonKeys(e, prefix+"."+k, out)
		}
	case []any:
		for _, e := range x {
			jsonKeys(e, prefix+"[]", out)
		}
	}
}

func keySet(t *testing.T, b []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	jsonKeys(v, "", m)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestCheckPayloadBuildersMatchFixtures: githubtest's builders make the
// fixtures' fields, no more and no fewer.
func TestCheckPayloadBuildersMatchFixtures(t *testing.T) {
	s := "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	for name, body := range map[string][]byte{
		"check_run.rerequested":        githubtest.CheckRunRerequested("octo", "fw", 31, 9, s, "feature", 7, false),
		"check_suite.rerequested":      githubtest.CheckSuiteRerequested("octo", "fw", 31, s, "feature", 7, false, "2019-05-15T15:21:14Z"),
		"merge_group.checks_requested": githubtest.MergeGroupChecksRequested("octo", "fw", "main", 7, s),
	} {
		got, want := keySet(t, body), keySet(t, fixture(t, name))
		if name == "check_run.rerequested" {
			// The fixture's check run lists no pull request; the builder's
			// does, shaped as check_suite.rerequested's.
			got = slices.DeleteFunc(got, func(k string) bool {
				return strings.HasPrefix(k, ".check_run.pull_requests[]") || strings.HasPrefix(k, ".check_run.check_suite.pull_requests[]")
			})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: builder keys differ from the fixture's\ngot  %v\nwant %v", name, got, want)
		}
	}
}
