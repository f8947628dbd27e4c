package leader

import (
	"testing"

	"github.com/ourci/ourci/raftfsm"
)

func TestGitHubDesiredCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  raftfsm.Job
		want string
	}{
		{"running", raftfsm.Job{State: raftfsm.JobOpen, Status: raftfsm.StatusPending}, "in_progress"},
		{"failing, still open", raftfsm.Job{State: raftfsm.JobOpen, Status: raftfsm.StatusFailed}, "in_progress"},
		{"held fork pull request", raftfsm.Job{State: raftfsm.JobOpen, Status: raftfsm.StatusPending, Held: true}, "completed/action_required"},
		{"passed", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusPassed}, "completed/success"},
		{"failed", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusFailed, Reason: "task t failed"}, "completed/failure"},
		{"cancelled", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusError, Reason: raftfsm.ReasonCancelled}, "completed/cancelled"},
		{"timed out", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusError, Reason: raftfsm.ReasonTimedOut}, "completed/timed_out"},
		{"superseded", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusError, Reason: raftfsm.ReasonSuperseded}, "completed/neutral"},
		{"infrastructure failure", raftfsm.Job{State: raftfsm.JobClosed, Status: raftfsm.StatusError, Reason: "task t infra_failed: no workspace"}, "completed/neutral"},
	} {
		if got := desiredCheck(&tc.job); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}
