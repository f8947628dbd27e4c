package githubtest

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Webhook bodies shaped like GitHub's documented payloads
// (docs.github.com/webhooks/webhook-events-and-payloads): every field OurCI
// reads, plus the realistic extras around it.

// ZeroSHA is the "after" of a push that deletes a branch or tag.
const ZeroSHA = "0000000000000000000000000000000000000000"

func fakeSHA(seed string) string { return fmt.Sprintf("%x", sha1.Sum([]byte(seed))) }

func fakeID(seed string) int64 {
	h := fnv.New32a()
	h.Write([]byte(seed))
	return int64(h.Sum32()%900_000_000) + 100_000_000
}

func user(login string, id int64) map[string]any {
	return map[string]any{
		"login":      login,
		"id":         id,
		"node_id":    fmt.Sprintf("MDQ6VXNlcj%d", id),
		"avatar_url": fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
		"url":        "https://api.github.com/users/" + login,
		"html_url":   "https://github.com/" + login,
		"type":       "User",
		"site_admin": false,
	}
}

func repoJSON(owner, name string, fork bool) map[string]any {
	full := owner + "/" + name
	return map[string]any{
		"id":                fakeID(full),
		"node_id":           fmt.Sprintf("MDEwOlJlcG9zaXRvcnk%d", fakeID(full)),
		"name":              name,
		"full_name":         full,
		"private":           false,
		"owner":             user(owner, fakeID(owner)),
		"html_url":          "https://github.com/" + full,
		"description":       nil,
		"fork":              fork,
		"url":               "https://api.github.com/repos/" + full,
		"statuses_url":      "https://api.github.com/repos/" + full + "/statuses/{sha}",
		"pulls_url":         "https://api.github.com/repos/" + full + "/pulls{/number}",
		"created_at":        "2019-05-15T15:19:25Z",
		"updated_at":        "2019-05-15T15:21:03Z",
		"pushed_at":         "2019-05-15T15:20:57Z",
		"git_url":           "git://github.com/" + full + ".git",
		"ssh_url":           "git@github.com:" + full + ".git",
		"clone_url":         "https://github.com/" + full + ".git",
		"svn_url":           "https://github.com/" + full,
		"homepage":          nil,
		"size":              0,
		"language":          "Go",
		"default_branch":    "main",
		"visibility":        "public",
		"open_issues_count": 2,
	}
}

func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// PullRequestTime is the pull request's updated_at in PullRequest's bodies.
var PullRequestTime = time.Date(2019, 5, 15, 15, 20, 33, 0, time.UTC)

// PullRequest is a pull_request delivery: action on pull request #pr of
// owner/repo, head commit headSHA on branch headRef. With fork, the head is
// in contributor/REPO, a fork, opened by "contributor"; else the head is a
// branch of owner/repo opened by owner. Its updated_at is PullRequestTime.
func PullRequest(action, owner, repo string, pr int, headSHA, headRef string, fork bool) []byte {
	return PullRequestAt(PullRequestTime, action, owner, repo, pr, headSHA, headRef, fork)
}

// PullRequestAt is PullRequest with the pull request updated at updated,
// as GitHub stamps each push to it.
func PullRequestAt(updated time.Time, action, owner, repo string, pr int, headSHA, headRef string, fork bool) []byte {
	base := repoJSON(owner, repo, false)
	head, login := base, owner
	if fork {
		login = "contributor"
		head = repoJSON(login, repo, true)
	}
	full := owner + "/" + repo
	state, closedAt := "open", any(nil)
	if action == "closed" {
		state, closedAt = "closed", "2019-05-15T15:25:00Z"
	}
	prURL := fmt.Sprintf("https://api.github.com/repos/%s/pulls/%d", full, pr)
	return marshal(map[string]any{
		"action": action,
		"number": pr,
		"pull_request": map[string]any{
			"url":                 prURL,
			"id":                  fakeID(prURL),
			"node_id":             fmt.Sprintf("MDExOlB1bGxSZXF1ZXN0%d", fakeID(prURL)),
			"html_url":            fmt.Sprintf("https://github.com/%s/pull/%d", full, pr),
			"diff_url":            fmt.Sprintf("https://github.com/%s/pull/%d.diff", full, pr),
			"issue_url":           fmt.Sprintf("https://api.github.com/repos/%s/issues/%d", full, pr),
			"statuses_url":        "https://api.github.com/repos/" + full + "/statuses/" + headSHA,
			"number":              pr,
			"state":               state,
			"locked":              false,
			"title":               "Update the README with new information.",
			"user":                user(login, fakeID(login)),
			"body":                "This is a pretty simple change that we need to pull into main.",
			"created_at":          "2019-05-15T15:20:33Z",
			"updated_at":          updated.UTC().Format(time.RFC3339),
			"closed_at":           closedAt,
			"merged_at":           nil,
			"merge_commit_sha":    nil,
			"assignee":            nil,
			"requested_reviewers": []any{},
			"labels":              []any{},
			"draft":               false,
			"head": map[string]any{
				"label": head["owner"].(map[string]any)["login"].(string) + ":" + headRef,
				"ref":   headRef,
				"sha":   headSHA,
				"user":  user(login, fakeID(login)),
				"repo":  head,
			},
			"base": map[string]any{
				"label": owner + ":main",
				"ref":   "main",
				"sha":   fakeSHA("base " + full),
				"user":  user(owner, fakeID(owner)),
				"repo":  base,
			},
			"author_association": map[bool]string{true: "CONTRIBUTOR", false: "OWNER"}[fork],
			"merged":             false,
			"mergeable":          nil,
			"comments":           0,
			"commits":            1,
			"additions":          1,
			"deletions":          1,
			"changed_files":      1,
		},
		"repository": base,
		"sender":     user(login, fakeID(login)),
	})
}

// Push is a push delivery of ref (refs/heads/BRANCH or refs/tags/TAG) to
// owner/repo, moving it to after; an all-zero after is a deletion (no head
// commit). The head commit's author has authorEmail.
func Push(owner, repo, ref, after, authorEmail string) []byte {
	full := owner + "/" + repo
	r := repoJSON(owner, repo, false)
	// Push payloads name the owner with name and email too, and give
	// created_at and pushed_at as Unix seconds.
	o := r["owner"].(map[string]any)
	o["name"], o["email"] = owner, authorEmail
	r["created_at"], r["pushed_at"] = 1557933565, 1557933657
	r["master_branch"] = "main"
	name := strings.Split(authorEmail, "@")[0]
	person := map[string]any{"name": name, "email": authorEmail, "username": owner}
	deleted := strings.Trim(after, "0") == ""
	before := fakeSHA("before " + full + ref)
	var head any
	commits := []any{}
	if !deleted {
		c := map[string]any{
			"id":        after,
			"tree_id":   fakeSHA("tree " + after),
			"distinct":  true,
			"message":   "Update README.md",
			"timestamp": "2019-05-15T15:20:30Z",
			"url":       "https://github.com/" + full + "/commit/" + after,
			"author":    person,
			"committer": person,
			"added":     []any{},
			"removed":   []any{},
			"modified":  []any{"README.md"},
		}
		head, commits = c, []any{c}
	}
	return marshal(map[string]any{
		"ref":         ref,
		"before":      before,
		"after":       after,
		"created":     false,
		"deleted":     deleted,
		"forced":      false,
		"base_ref":    nil,
		"compare":     fmt.Sprintf("https://github.com/%s/compare/%s...%s", full, before[:12], after[:min(len(after), 12)]),
		"commits":     commits,
		"head_commit": head,
		"repository":  r,
		"pusher":      map[string]any{"name": owner, "email": authorEmail},
		"sender":      user(owner, fakeID(owner)),
	})
}

// Ping is the ping delivery GitHub sends when a repository webhook is made.
func Ping(owner, repo string) []byte {
	full := owner + "/" + repo
	return marshal(map[string]any{
		"zen":     "Keep it logically awesome.",
		"hook_id": fakeID("hook " + full),
		"hook": map[string]any{
			"type":   "Repository",
			"id":     fakeID("hook " + full),
			"name":   "web",
			"active": true,
			"events": []string{"pull_request", "push"},
			"config": map[string]any{"content_type": "json", "insecure_ssl": "0", "url": "https://ci.example.com/webhook/github"},
		},
		"repository": repoJSON(owner, repo, false),
		"sender":     user(owner, fakeID(owner)),
	})
}
