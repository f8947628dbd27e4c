package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	owner, repo, sha := r.PathValue("owner"), r.PathValue("repo"), strings.ToLower(r.PathValue("sha"))
	var in struct {
		State       string  `json:"state"`
		TargetURL   *string `json:"target_url"`
		Description *string `json:"description"`
		Context     *string `json:"context"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"message":"Problems parsing JSON","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	if !isSHA(sha) {
		writeJSON(w, http.StatusUnprocessableEntity, fmt.Sprintf(`{"message":"No commit found for SHA: %s","documentation_url":"https://docs.github.com/rest"}`, sha))
		return
	}
	st := Status{Owner: owner, Repo: repo, SHA: sha, State: in.State, Context: "default",
		Authorization: r.Header.Get("Authorization"), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	switch in.State {
	case "pending", "success", "failure", "error":
	default:
		validationFailed(w, "state", "state is not included in the list")
		return
	}
	if in.TargetURL != nil {
		if *in.TargetURL != "" && !validURL(*in.TargetURL) {
			validationFailed(w, "target_url", "target_url must use http(s) scheme")
			return
		}
		st.TargetURL = *in.TargetURL
	}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > 140 {
			validationFailed(w, "description", "description is too long (maximum is 140 characters)")
			return
		}
		st.Description = *in.Description
	}
	if in.Context != nil && *in.Context != "" {
		st.Context = *in.Context
	}
	s.mu.Lock()
	st.ID = int64(len(s.statuses) + 1)
	s.statuses = append(s.statuses, st)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	api := "http://" + r.Host
	w.Header().Set("Location", fmt.Sprintf("%s/repos/%s/%s/statuses/%s", api, owner, repo, sha))
	body, _ := json.Marshal(map[string]any{
		"url":         fmt.Sprintf("%s/repos/%s/%s/statuses/%s", api, owner, repo, sha),
		"avatar_url":  "https://github.com/images/error/hubot_happy.gif",
		"id":          st.ID,
		"node_id":     fmt.Sprintf("MDY6U3RhdHVz%d", st.ID),
		"state":       st.State,
		"description": st.Description,
		"target_url":  st.TargetURL,
		"context":     st.Context,
		"created_at":  st.CreatedAt.Format(time.RFC3339),
		"updated_at":  st.CreatedAt.Format(time.RFC3339),
		"creator":     user("ourci-bot", 9001),
	})
	writeJSON(w, http.StatusCreated, string(body))
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) {
	owner, repo, sha := r.PathValue("owner"), r.PathValue("repo"), strings.ToLower(r.PathValue("sha"))
	s.mu.Lock()
	email, ok := s.emails[sha]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnprocessableEntity, fmt.Sprintf(`{"message":"No commit found for SHA: %s","documentation_url":"https://docs.github.com/rest/commits/commits#get-a-commit"}`, sha))
		return
	}
	api := "http://" + r.Host
	name := localPart(email)
	person := map[string]any{"name": name, "email": email, "date": "2024-01-02T03:04:05Z"}
	body, _ := json.Marshal(map[string]any{
		"sha":      sha,
		"node_id":  "C_kwDOAAAAAd" + sha[:min(len(sha), 12)],
		"url":      fmt.Sprintf("%s/repos/%s/%s/commits/%s", api, owner, repo, sha),
		"html_url": fmt.Sprintf("https://github.com/%s/%s/commit/%s", owner, repo, sha),
		"commit": map[string]any{
			"url":           fmt.Sprintf("%s/repos/%s/%s/git/commits/%s", api, owner, repo, sha),
			"author":        person,
			"committer":     person,
			"message":       "Fix all the bugs",
			"tree":          map[string]any{"sha": fakeSHA("tree " + sha)},
			"comment_count": 0,
			"verification":  map[string]any{"verified": false, "reason": "unsigned"},
		},
		"author":    user(name, 1),
		"committer": user(name, 1),
		"parents":   []any{map[string]any{"sha": fakeSHA("parent " + sha)}},
		"stats":     map[string]any{"additions": 104, "deletions": 4, "total": 108},
		"files":     []any{},
	})
	writeJSON(w, http.StatusOK, string(body))
}

func localPart(email string) string {
	if at := strings.IndexByte(email, '@'); at > 0 {
		return email[:at]
	}
	return "octocat"
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}
