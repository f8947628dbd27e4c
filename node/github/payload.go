package github

import (
	"bytes"
	"net/url"
	"strings"
)

// The parts of GitHub's webhook payloads that OurCI reads. Everything else
// GitHub sends is ignored by encoding/json.

type ghUser struct {
	Login string `json:"login"`
	Name  string `json:"name"` // push payloads name the owner this way
}

type ghRepo struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	FullName string `json:"full_name"`
	Owner    ghUser `json:"owner"`
	CloneURL string `json:"clone_url"`
	HTMLURL  string `json:"html_url"`
}

type ghBranch struct {
	Ref  string  `json:"ref"`
	SHA  string  `json:"sha"`
	Repo *ghRepo `json:"repo"` // null when a fork was deleted
}

type ghPullRequest struct {
	Number    int      `json:"number"`
	UpdatedAt string   `json:"updated_at"`
	User      ghUser   `json:"user"`
	Head      ghBranch `json:"head"`
	Base      ghBranch `json:"base"`
}

type prPayload struct {
	Action      string         `json:"action"`
	Number      int            `json:"number"`
	PullRequest *ghPullRequest `json:"pull_request"`
	Repository  *ghRepo        `json:"repository"`
	Sender      ghUser         `json:"sender"`
}

type ghCommitAuthor struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

type pushPayload struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	HeadCommit *struct {
		ID     string         `json:"id"`
		Author ghCommitAuthor `json:"author"`
	} `json:"head_commit"`
	Repository *ghRepo        `json:"repository"`
	Pusher     ghCommitAuthor `json:"pusher"`
	Sender     ghUser         `json:"sender"`
}

type pingPayload struct {
	Zen        string  `json:"zen"`
	HookID     int64   `json:"hook_id"`
	Repository *ghRepo `json:"repository"`
}

// jsonBody returns the JSON document of a delivery. GitHub sends either
// application/json or, the webhook form's default,
// application/x-www-form-urlencoded with the JSON in a `payload` field; the
// signature covers the raw body in both cases.
func jsonBody(body []byte) ([]byte, bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("payload=")) {
		return body, true
	}
	q, err := url.ParseQuery(string(trimmed))
	if err != nil || len(q["payload"]) != 1 {
		return nil, false
	}
	return []byte(q.Get("payload")), true
}

// validName accepts a GitHub owner or repository name: letters, digits,
// '.', '-', '_' (never "." or ".."). They become URL path segments.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 100 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validSHA accepts a full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits.
func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func zeroSHA(s string) bool { return s != "" && strings.Trim(s, "0") == "" }

// validRef follows git check-ref-format for a branch or tag name: no
// control characters, space, ~ ^ : ? * [ \, "..", "@{", no leading '-' or
// '/', no trailing '/', '.' or ".lock". Names end up in environment
// variables and git command lines.
func validRef(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '-' || s[0] == '/' || strings.HasSuffix(s, "/") ||
		strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "..") || strings.Contains(s, "@{") || strings.Contains(s, "//") {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	return true
}

// validDelivery accepts X-GitHub-Delivery: a GUID from GitHub; any short
// printable token without spaces from other senders.
func validDelivery(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validWebURL accepts an http(s) URL with a host (clone and HTML URLs).
func validWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// repo converts a payload repository, or reports what is wrong with it.
func (r *ghRepo) repo() (Repo, string) {
	if r == nil {
		return Repo{}, "no repository"
	}
	full := r.FullName
	owner := r.Owner.Login
	if owner == "" {
		owner = r.Owner.Name
	}
	if full == "" && owner != "" && r.Name != "" {
		full = owner + "/" + r.Name
	}
	o, n, ok := strings.Cut(full, "/")
	if !ok || !validName(o) || !validName(n) {
		return Repo{}, "repository full_name is not owner/name"
	}
	if !validWebURL(r.CloneURL) {
		return Repo{}, "repository clone_url is not an http(s) URL"
	}
	html := r.HTMLURL
	if !validWebURL(html) {
		html = ""
	}
	return Repo{Owner: o, Name: n, FullName: full, CloneURL: r.CloneURL, HTMLURL: html}, ""
}

// sameRepo tells whether two payload repositories are the same one: by id
// when both carry one, else by full name (GitHub names ignore case).
func sameRepo(a, b *ghRepo) bool {
	if a == nil || b == nil {
		return false
	}
	if a.ID != 0 && b.ID != 0 {
		return a.ID == b.ID
	}
	return a.FullName != "" && strings.EqualFold(a.FullName, b.FullName)
}

type ghApp struct {
	ID int64 `json:"id"`
}

// ghPRRef is a pull request as check_run and check_suite payloads list it.
type ghPRRef struct {
	Number int `json:"number"`
	Head   struct {
		Ref  string `json:"ref"`
		SHA  string `json:"sha"`
		Repo *struct {
			ID int64 `json:"id"`
		} `json:"repo"`
	} `json:"head"`
	Base struct {
		Ref  string `json:"ref"`
		Repo *struct {
			ID int64 `json:"id"`
		} `json:"repo"`
	} `json:"base"`
}

type ghCheckSuite struct {
	ID           int64     `json:"id"`
	HeadBranch   *string   `json:"head_branch"`
	HeadSHA      string    `json:"head_sha"`
	PullRequests []ghPRRef `json:"pull_requests"`
	App          *ghApp    `json:"app"`
	UpdatedAt    string    `json:"updated_at"`
}

type checkRunPayload struct {
	Action   string `json:"action"`
	CheckRun *struct {
		ID           int64        `json:"id"`
		Name         string       `json:"name"`
		HeadSHA      string       `json:"head_sha"`
		ExternalID   string       `json:"external_id"`
		CheckSuite   ghCheckSuite `json:"check_suite"`
		App          *ghApp       `json:"app"`
		PullRequests []ghPRRef    `json:"pull_requests"`
	} `json:"check_run"`
	RequestedAction *struct {
		Identifier string `json:"identifier"`
	} `json:"requested_action"`
	Repository   *ghRepo `json:"repository"`
	Sender       ghUser  `json:"sender"`
	Installation *ghApp  `json:"installation"`
}

type checkSuitePayload struct {
	Action       string        `json:"action"`
	CheckSuite   *ghCheckSuite `json:"check_suite"`
	Repository   *ghRepo       `json:"repository"`
	Sender       ghUser        `json:"sender"`
	Installation *ghApp        `json:"installation"`
}

type mergeGroupPayload struct {
	Action     string `json:"action"`
	MergeGroup *struct {
		HeadSHA    string `json:"head_sha"`
		HeadRef    string `json:"head_ref"`
		BaseRef    string `json:"base_ref"`
		HeadCommit *struct {
			Author ghCommitAuthor `json:"author"`
		} `json:"head_commit"`
	} `json:"merge_group"`
	Repository   *ghRepo `json:"repository"`
	Sender       ghUser  `json:"sender"`
	Installation *ghApp  `json:"installation"`
}
