package leader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourci/ourci/node/github"
	"github.com/ourci/ourci/node/nodetest/wait"
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

// fakeStatuses is a commit status sender: each Set waits for an answer
// on reply (nil: acknowledged) and is counted.
type fakeStatuses struct {
	mu    sync.Mutex
	sent  []string // "JOB STATE"
	reply chan error
}

func (f *fakeStatuses) Set(ctx context.Context, owner, repo, sha, state, url, desc string) error {
	f.mu.Lock()
	f.sent = append(f.sent, strings.TrimPrefix(url, "http://ci/jobs/")+" "+state)
	f.mu.Unlock()
	select {
	case err := <-f.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answer answers the send in flight (or the next one) with err.
func (f *fakeStatuses) answer(t *testing.T, err error) {
	t.Helper()
	select {
	case f.reply <- err:
	case <-time.After(5 * time.Second):
		t.Fatalf("no status sent to answer (sent %d)", f.count())
	}
}

func (f *fakeStatuses) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// githubWorld is a ledger with one open job from GitHub, and the duty
// running against it with a fake status sender.
func githubWorld(t *testing.T) (*world, *fakeStatuses, func()) {
	w := newWorld(t)
	nj := &raftfsm.NewJob{Source: raftfsm.Source{Repo: "o/r", SHA: "abc", Branch: "main"}, Deadline: w.clock.Now().Add(time.Hour),
		GitHub: &raftfsm.GitHub{Owner: "o", Name: "r"}}
	w.ok(raftfsm.Command{Type: raftfsm.CmdSpawn, Spawn: &raftfsm.Spawn{NewJob: nj, Job: "j1", Task: "t1", Topic: "build", Args: []string{"make"}, At: w.clock.Now()}})
	st := &fakeStatuses{reply: make(chan error)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	g := GitHub{Ledger: w.l, Writer: w.w, Statuses: st, Log: quiet, Every: 5 * time.Millisecond,
		JobURL: func(job string) string { return "http://ci/jobs/" + job },
		Go:     func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }}
	wg.Add(1)
	go func() { defer wg.Done(); g.Run(ctx) }()
	return w, st, func() { cancel(); wg.Wait() }
}

func reported(w *world) []string {
	var out []string
	for _, c := range w.w.Commands() {
		if c.Type == raftfsm.CmdReported {
			out = append(out, c.Reported.Job+" "+c.Reported.Status)
		}
	}
	return out
}

// TestGitHubRunRecordsOnlyAcknowledged: the duty sends the job's pending
// status once, records it only after GitHub acknowledged it, and does not
// send an acknowledged status again.
func TestGitHubRunRecordsOnlyAcknowledged(t *testing.T) {
	w, st, stop := githubWorld(t)
	defer stop()
	wait.For(t, 5*time.Second, "the status sent", func() (bool, string) { return st.count() == 1, fmt.Sprint(st.count()) })
	time.Sleep(30 * time.Millisecond) // several rounds while the send is in flight
	if got := reported(w); len(got) != 0 || st.count() != 1 {
		t.Fatalf("before the acknowledgement: recorded %v, sent %d times", got, st.count())
	}
	st.answer(t, nil)
	wait.For(t, 5*time.Second, "the status recorded", func() (bool, string) {
		return fmt.Sprint(reported(w)) == "[j1 pending]", fmt.Sprint(reported(w))
	})
	time.Sleep(30 * time.Millisecond) // several rounds after it was recorded
	if st.count() != 1 || w.l.Job("j1").GitHub.Reported != "pending" {
		t.Fatalf("sent %v, ledger says %q", st.sent, w.l.Job("j1").GitHub.Reported)
	}
}

// TestGitHubRunRetriesAFailedSend: a send that failed records nothing and
// is sent again; one that failed for good is not, for the same state.
func TestGitHubRunRetriesAFailedSend(t *testing.T) {
	w, st, stop := githubWorld(t)
	defer stop()
	st.answer(t, errors.New("github: 502 bad gateway"))
	st.answer(t, fmt.Errorf("github: 422: %w", github.ErrPermanent))
	time.Sleep(30 * time.Millisecond)
	if got := reported(w); len(got) != 0 || st.count() != 2 {
		t.Fatalf("after a failure and a permanent one: recorded %v, sent %v", got, st.sent)
	}
	select {
	case st.reply <- nil:
		t.Fatalf("sent again after a permanent failure: %v", st.sent)
	case <-time.After(30 * time.Millisecond):
	}
}
