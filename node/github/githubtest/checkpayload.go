package githubtest

import "fmt"

// Webhook bodies of the check and merge-queue events, shaped field for
// field like the trimmed examples in node/github/testdata (taken from
// octokit/webhooks' payload-examples, GitHub's published ones).

func appJSON(id int64) map[string]any {
	return map[string]any{"id": id, "name": "OurCI"}
}

// prRefJSON is a pull request as check payloads list it; a fork's head is
// in another repository.
func prRefJSON(owner, repo string, pr int, sha, branch string, fork bool) map[string]any {
	full := owner + "/" + repo
	base := map[string]any{"id": fakeID(full), "url": "https://api.github.com/repos/" + full, "name": repo}
	head := base
	if fork {
		head = map[string]any{"id": fakeID("contributor/" + repo), "url": "https://api.github.com/repos/contributor/" + repo, "name": repo}
	}
	url := fmt.Sprintf("https://api.github.com/repos/%s/pulls/%d", full, pr)
	return map[string]any{
		"url": url, "id": fakeID(url), "number": pr,
		"head": map[string]any{"ref": branch, "sha": sha, "repo": head},
		"base": map[string]any{"ref": "main", "sha": fakeSHA("base " + full), "repo": base},
	}
}

func suiteJSON(owner, repo string, suite int64, sha, branch string, prs []any, app int64, updated string) map[string]any {
	full := owner + "/" + repo
	return map[string]any{
		"id":            suite,
		"node_id":       fmt.Sprintf("MDEwOkNoZWNrU3VpdGU%d", suite),
		"head_branch":   branch,
		"head_sha":      sha,
		"status":        "completed",
		"conclusion":    "failure",
		"url":           fmt.Sprintf("https://api.github.com/repos/%s/check-suites/%d", full, suite),
		"before":        fakeSHA("before " + sha),
		"after":         sha,
		"pull_requests": prs,
		"app":           appJSON(app),
		"created_at":    "2019-05-15T15:20:31Z",
		"updated_at":    updated,
	}
}

func checkCommon(owner, repo string, installation int64, body map[string]any) []byte {
	r := repoJSON(owner, repo, false)
	body["repository"] = map[string]any{
		"id": r["id"], "node_id": r["node_id"], "name": r["name"], "full_name": r["full_name"], "private": r["private"],
		"owner":    map[string]any{"login": owner, "id": fakeID(owner), "type": "User"},
		"html_url": r["html_url"], "fork": r["fork"], "url": r["url"], "clone_url": r["clone_url"], "default_branch": r["default_branch"],
	}
	body["sender"] = map[string]any{"login": owner, "id": fakeID(owner), "type": "User"}
	body["installation"] = map[string]any{"id": installation, "node_id": fmt.Sprintf("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u%d", installation)}
	return marshal(body)
}

// CheckRunRerequested is a check_run delivery, action rerequested, for
// check run checkRun of app on owner/repo at sha (branch, pull request pr
// unless 0): someone pressed Re-run on it.
func CheckRunRerequested(owner, repo string, app, checkRun int64, sha, branch string, pr int, fork bool) []byte {
	full := owner + "/" + repo
	prs := []any{}
	if pr > 0 {
		prs = append(prs, prRefJSON(owner, repo, pr, sha, branch, fork))
	}
	suite := suiteJSON(owner, repo, fakeID("suite "+full+sha), sha, branch, prs, app, "2019-05-15T15:21:14Z")
	delete(suite, "node_id") // GitHub's example of this event has none, nor for the run
	return checkCommon(owner, repo, fakeID("installation "+full), map[string]any{
		"action": "rerequested",
		"check_run": map[string]any{
			"id":            checkRun,
			"head_sha":      sha,
			"external_id":   "",
			"url":           fmt.Sprintf("https://api.github.com/repos/%s/check-runs/%d", full, checkRun),
			"html_url":      fmt.Sprintf("https://github.com/%s/runs/%d", full, checkRun),
			"status":        "completed",
			"conclusion":    "failure",
			"started_at":    "2019-05-15T15:21:12Z",
			"completed_at":  "2019-05-15T15:21:45Z",
			"name":          "ourci",
			"check_suite":   suite,
			"app":           appJSON(app),
			"pull_requests": prs,
		},
	})
}

// CheckSuiteRerequested is a check_suite delivery, action rerequested:
// Re-run all checks of app's suite on sha. updated is the suite's
// updated_at (it moves with every run of the suite).
func CheckSuiteRerequested(owner, repo string, app int64, sha, branch string, pr int, fork bool, updated string) []byte {
	full := owner + "/" + repo
	prs := []any{}
	if pr > 0 {
		prs = append(prs, prRefJSON(owner, repo, pr, sha, branch, fork))
	}
	return checkCommon(owner, repo, fakeID("installation "+full), map[string]any{
		"action":      "rerequested",
		"check_suite": suiteJSON(owner, repo, fakeID("suite "+full+sha), sha, branch, prs, app, updated),
	})
}

// MergeGroupChecksRequested is a merge_group delivery, action
// checks_requested: the merge queue of base made headSHA on
// refs/heads/gh-readonly-queue/BASE/pr-PR-... and waits for its checks.
func MergeGroupChecksRequested(owner, repo, base string, pr int, headSHA string) []byte {
	full := owner + "/" + repo
	baseSHA := fakeSHA("base " + full)
	return checkCommon(owner, repo, fakeID("installation "+full), map[string]any{
		"action": "checks_requested",
		"merge_group": map[string]any{
			"head_sha": headSHA,
			"head_ref": fmt.Sprintf("refs/heads/gh-readonly-queue/%s/pr-%d-%s", base, pr, baseSHA),
			"base_sha": baseSHA,
			"base_ref": "refs/heads/" + base,
			"head_commit": map[string]any{
				"id":        headSHA,
				"tree_id":   fakeSHA("tree " + headSHA),
				"message":   fmt.Sprintf("Merge pull request #%d from %s/feature\n\nUpdate README.md", pr, owner),
				"timestamp": "2019-05-15T15:20:30Z",
				"author":    map[string]any{"name": owner, "email": owner + "@users.noreply.github.com"},
				"committer": map[string]any{"name": owner, "email": owner + "@users.noreply.github.com"},
			},
		},
	})
}
