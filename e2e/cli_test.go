package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// meshView is `status --json` without a JOB.
type meshView struct {
	SchemaVersion int          `json:"schema_version"`
	Node          string       `json:"node"`
	Leader        string       `json:"leader"`
	RaftRole      string       `json:"raft_role"`
	Members       []memberView `json:"members"`
	Waiting       []struct {
		Task   string `json:"task"`
		Topic  string `json:"topic"`
		Reason string `json:"reason"`
	} `json:"waiting"`
}

type memberView struct {
	Name   string   `json:"name"`
	Addr   string   `json:"addr"`
	HTTP   string   `json:"http"`
	Topics []string `json:"topics"`
	Slots  int      `json:"slots"`
	Used   int      `json:"used"`
	Raft   string   `json:"raft"`
	Leader bool     `json:"leader"`
	Alive  bool     `json:"alive"`
	Blobs  int64    `json:"blobs"`      // blobs the ledger says it holds
	Bytes  int64    `json:"blob_bytes"` // their total size
}

func (v meshView) member(name string) (memberView, bool) {
	for _, m := range v.Members {
		if m.Name == name {
			return m, true
		}
	}
	return memberView{}, false
}

// jobView is `status --json JOB`.
type jobView struct {
	SchemaVersion int `json:"schema_version"`
	Job           struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"job"`
	Tasks []taskView `json:"tasks"`
}

type taskView struct {
	ID       string   `json:"id"`
	Parent   string   `json:"parent"`
	Topic    string   `json:"topic"`
	Args     []string `json:"args"`
	State    string   `json:"state"`
	Node     string   `json:"node"`
	Attempt  int      `json:"attempt"`
	ExitCode *int     `json:"exit_code"`
	Error    string   `json:"error"`
}

// exit renders ExitCode for messages: a number or "null".
func (tv taskView) exit() string {
	if tv.ExitCode == nil {
		return "null"
	}
	return fmt.Sprint(*tv.ExitCode)
}

func (tv taskView) String() string {
	return fmt.Sprintf("%s(parent %q topic %s args %q state %s node %q attempt %d exit %s error %q)",
		tv.ID, tv.Parent, tv.Topic, tv.Args, tv.State, tv.Node, tv.Attempt, tv.exit(), tv.Error)
}

func (j jobView) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s state %q status %q reason %q, %d tasks:", j.Job.ID, j.Job.State, j.Job.Status, j.Job.Reason, len(j.Tasks))
	for _, tv := range j.Tasks {
		fmt.Fprintf(&b, "\n  %v", tv)
	}
	return b.String()
}

// task returns the job's task whose args satisfy match; ok is false unless
// exactly one does.
func (j jobView) task(match func(taskView) bool) (taskView, bool) {
	var found []taskView
	for _, tv := range j.Tasks {
		if match(tv) {
			found = append(found, tv)
		}
	}
	if len(found) != 1 {
		return taskView{}, false
	}
	return found[0], true
}

// meshStatus runs `status --json` on node i.
func (m *mesh) meshStatus(t *testing.T, i int) (meshView, error) {
	t.Helper()
	var v meshView
	r := m.runOn(t, i, "status", "--json")
	if r.code != 0 {
		return v, fmt.Errorf("%s: status --json: %v", m.nodes[i].spec.Name, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		return v, fmt.Errorf("%s: status --json: %v in %q", m.nodes[i].spec.Name, err, r.stdout)
	}
	return v, nil
}

// jobStatus runs `status --json JOB` on node i.
func (m *mesh) jobStatus(t *testing.T, i int, job string) (jobView, error) {
	t.Helper()
	return jobStatusAs[jobView](t, m, i, job)
}

// waitJob polls the job through node i until cond holds, and returns it.
func (m *mesh) waitJob(t *testing.T, i int, job string, timeout time.Duration, what string, cond func(jobView) bool) jobView {
	t.Helper()
	return waitJobAs(t, m, i, job, timeout, what, cond)
}

// jobStatusAs runs `status --json JOB` on node i and decodes it into V
// (each suite reads the fields it needs), once it checked the schema
// version and that the answer is about job.
func jobStatusAs[V any](t *testing.T, m *mesh, i int, job string) (V, error) {
	t.Helper()
	var v V
	r := m.runOn(t, i, "status", "--json", job)
	if r.code != 0 {
		return v, fmt.Errorf("status --json %s on %s: %v", job, m.nodes[i].spec.Name, r)
	}
	var head struct {
		SchemaVersion int `json:"schema_version"`
		Job           struct {
			ID string `json:"id"`
		} `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &head); err != nil {
		return v, fmt.Errorf("status --json %s on %s: %v in %q", job, m.nodes[i].spec.Name, err, r.stdout)
	}
	if head.SchemaVersion != 1 || head.Job.ID != job {
		return v, fmt.Errorf("status --json %s on %s: schema_version %d job id %q in %q", job, m.nodes[i].spec.Name, head.SchemaVersion, head.Job.ID, r.stdout)
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		return v, fmt.Errorf("status --json %s on %s: %v in %q", job, m.nodes[i].spec.Name, err, r.stdout)
	}
	return v, nil
}

// waitJobAs polls the job through node i until cond holds, and returns it.
func waitJobAs[V any](t *testing.T, m *mesh, i int, job string, timeout time.Duration, what string, cond func(V) bool) V {
	t.Helper()
	var v V
	wait.For(t, timeout, what, func() (bool, string) {
		var err error
		if v, err = jobStatusAs[V](t, m, i, job); err != nil {
			return false, fmt.Sprintf("waiting for %s: %v", what, err)
		}
		return cond(v), fmt.Sprintf("waiting for %s; last seen %v", what, v)
	})
	return v
}

// waitClosed waits for the job to close.
func (m *mesh) waitClosed(t *testing.T, i int, job string, timeout time.Duration) jobView {
	t.Helper()
	return m.waitJob(t, i, job, timeout, "the job to close", func(v jobView) bool { return v.Job.State == "closed" })
}

// spawn runs `spawn --json ARGS...` on node i and returns the new job and task.
func (m *mesh) spawn(t *testing.T, i int, args ...string) (job, task string) {
	t.Helper()
	r := m.runOn(t, i, append([]string{"spawn", "--json"}, args...)...)
	var out struct {
		SchemaVersion int    `json:"schema_version"`
		Job           string `json:"job"`
		Task          string `json:"task"`
	}
	if r.code != 0 {
		t.Fatalf("spawn --json %q: %v", args, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.SchemaVersion != 1 || out.Job == "" || out.Task == "" {
		t.Fatalf("spawn --json %q: want {\"schema_version\":1,\"job\":ID,\"task\":ID}, got %q (%v)", args, r.stdout, err)
	}
	return out.Job, out.Task
}

// topicNames is the sorted topic names of --topic values ("TOPIC[=SCRIPT]").
func topicNames(topics []string) string {
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i], _, _ = strings.Cut(tp, "=")
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
