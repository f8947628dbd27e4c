package github

import (
	"fmt"
	"slices"
)

// Trigger decides whether an event opens a job: a pull_request that was
// opened, synchronized (new commits) or reopened, a push to one of
// pushBranches (exact branch names; "*" means any branch) that is not a
// deletion, a check_run or check_suite re-requested (GitHub's Re-run
// buttons), or a merge_group whose checks are requested (a merge queue). Tag pushes never trigger. When it does not, the reason says why
// in words fit for a log line or a webhook response ("action closed is
// ignored", ...).
func Trigger(e Event, pushBranches []string) (bool, string) {
	switch e.Kind {
	case KindPullRequest:
		switch e.Action {
		case "opened", "synchronize", "reopened":
		default:
			return false, fmt.Sprintf("pull_request action %s is ignored", quoteOr(e.Action, "(none)"))
		}
		if e.HeadSHA == "" {
			return false, "pull_request without a head commit is ignored"
		}
		return true, fmt.Sprintf("pull request #%d %s", e.PR, e.Action)
	case KindPush:
		switch {
		case e.Tag != "":
			return false, fmt.Sprintf("push of tag %s is ignored (not a branch push)", e.Tag)
		case e.HeadRef == "":
			return false, "push to something other than a branch is ignored"
		case e.Deleted:
			return false, fmt.Sprintf("deletion of branch %s is ignored", e.HeadRef)
		case e.HeadSHA == "":
			return false, "push without a head commit is ignored"
		case len(pushBranches) == 0:
			return false, fmt.Sprintf("push to %s is ignored (no push branches are configured)", e.HeadRef)
		case slices.Contains(pushBranches, "*") || slices.Contains(pushBranches, e.HeadRef):
			return true, fmt.Sprintf("push to %s", e.HeadRef)
		default:
			return false, fmt.Sprintf("push to %s is ignored (not one of the push branches)", e.HeadRef)
		}
	case KindCheckRun, KindCheckSuite:
		switch {
		case e.Action == "requested_action":
			return false, fmt.Sprintf("%s requested action %s is not one OurCI offers", e.Kind, quoteOr(e.RequestedAction, "(none)"))
		case e.Action != "rerequested":
			return false, fmt.Sprintf("%s action %s is ignored", e.Kind, quoteOr(e.Action, "(none)"))
		}
		return true, fmt.Sprintf("%s re-requested on %s", e.Kind, e.HeadSHA[:min(len(e.HeadSHA), 12)])
	case KindMergeGroup:
		if e.Action != "checks_requested" {
			return false, fmt.Sprintf("merge_group action %s is ignored", quoteOr(e.Action, "(none)"))
		}
		return true, fmt.Sprintf("merge queue %s", e.HeadRef)
	case KindPing:
		return false, "ping"
	default:
		return false, fmt.Sprintf("event %s is ignored", quoteOr(e.Kind, "(none)"))
	}
}

func quoteOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return fmt.Sprintf("%q", s)
}
