package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// renderStatus prints the mesh and recent jobs (control characters in what
// the ledger holds escaped: safe.go).
func renderStatus(w io.Writer, st api.Status) {
	sanitize(&st)
	leader := st.Leader
	if leader == "" {
		leader = "(none: election in progress)"
	}
	fmt.Fprintf(w, "mesh: %d members, leader %s; this node %s is %s (ledger index %d)\n", len(st.Members), leader, st.Node, st.RaftRole, st.Index)
	if q := st.Quorum; q.Voters > 0 {
		fmt.Fprintf(w, "quorum: %d of %d voters alive, %d needed", q.Alive, q.Voters, q.Needed)
		if q.Warning != "" {
			fmt.Fprintf(w, "; WARNING: %s", q.Warning)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT\tSLOTS\tBLOBS\tLOGS\tTOPICS\tHTTP")
	for _, m := range st.Members {
		name := m.Name
		if m.Leader {
			name += " *"
		}
		switch {
		case !m.Alive && m.Raft == "voter":
			name += " (DEAD VOTER: not seen by gossip)"
		case !m.Alive:
			name += " (not seen by gossip)"
		}
		if m.Draining {
			name += " (draining)"
		}
		if m.CatchingUp {
			name += " (catching up)"
		}
		if m.Unhealthy != "" {
			name += " (UNHEALTHY: " + m.Unhealthy + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d (%s)\t%d (%s)\t%s\t%s\n", name, m.Raft, m.Used, m.Slots, m.Blobs, humanBytes(m.Bytes), m.Logs, humanBytes(m.LogBytes), strings.Join(m.Topics, " "), m.HTTP)
	}
	tw.Flush()
	if len(st.Topics) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tNODES\tSLOTS\tQUEUED")
		for _, t := range st.Topics {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\n", t.Name, strings.Join(t.Nodes, " "), t.Used, t.Slots, t.Queued)
		}
		tw.Flush()
	}
	if len(st.Waiting) > 0 {
		fmt.Fprintln(w, "\nwaiting:")
		for _, q := range st.Waiting {
			fmt.Fprintf(w, "  task %s (job %s): %s\n", q.Task, q.Job, q.Reason)
		}
	}
	fmt.Fprintln(w, "\nrecent jobs:")
	if len(st.Jobs) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  JOB\tSTATE\tSTATUS\tTASKS\tDURATION\tREASON")
	for _, j := range st.Jobs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d (%d passed, %d failed, %d open)\t%s\t%s\n", j.ID, j.State, j.Status, j.Tasks, j.Passed, j.Failed, j.Open, jobDuration(j), j.Reason)
	}
	tw.Flush()
}

func jobDuration(j api.JobView) string {
	end := j.ClosedAt
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(j.CreatedAt).Round(time.Millisecond).String()
}

// renderJob draws a job's task tree, indented by parent.
func renderJob(w io.Writer, d api.JobDetail) { renderJobIn(w, d, palette{}) }

// renderJobIn draws a job's task tree with states in pal's colours
// (control characters in what the ledger holds escaped: safe.go).
func renderJobIn(w io.Writer, d api.JobDetail, pal palette) {
	sanitize(&d)
	j := d.Job
	fmt.Fprintf(w, "job %s: %s, %s · %d tasks (%d passed, %d failed, %d open) · %s", j.ID, j.State, pal.status(j.Status), j.Tasks, j.Passed, j.Failed, j.Open, jobDuration(j))
	if j.Reason != "" {
		fmt.Fprintf(w, " · %s", j.Reason)
	}
	fmt.Fprintln(w)
	children := map[string][]api.TaskView{}
	var roots []api.TaskView
	for _, t := range d.Tasks {
		if t.Parent == "" {
			roots = append(roots, t)
		} else {
			children[t.Parent] = append(children[t.Parent], t)
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TASK\t%s\tNODE\tATTEMPT\tDURATION\tEXIT\tTOPIC\tARGS\n", pal.cell("", "STATE"))
	var walk func(t api.TaskView, prefix string, last, root bool)
	walk = func(t api.TaskView, prefix string, last, root bool) {
		branch, next := "", ""
		if !root {
			branch, next = "├─ ", "│  "
			if last {
				branch, next = "└─ ", "   "
			}
		}
		exit := "-"
		if t.ExitCode != nil {
			exit = fmt.Sprint(*t.ExitCode)
		}
		node := t.Node
		if node == "" {
			node = "-"
		}
		state := string(t.State)
		if t.Waiting != "" {
			state += " (" + t.Waiting + ")"
		}
		fmt.Fprintf(tw, "%s%s%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", prefix, branch, t.ID, pal.cell(t.State, state), node, t.Attempt, taskDuration(t), exit, t.Topic, strings.Join(t.Args, " "))
		kids := children[t.ID]
		for i, k := range kids {
			walk(k, prefix+next, i == len(kids)-1, false)
		}
	}
	for _, r := range roots {
		walk(r, "", true, true)
	}
	tw.Flush()
}

func taskDuration(t api.TaskView) string {
	if t.StartedAt.IsZero() {
		return "-"
	}
	end := t.FinishedAt
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(t.StartedAt).Round(time.Millisecond).String()
}

func humanBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// palette colours states with ANSI escapes when on; the zero value draws
// plain text.
type palette struct{ on bool }

// SGR colour codes, all of one length, so that a column of coloured cells
// stays aligned in a tabwriter (which counts the escape bytes as width:
// every cell of the column carries the same number of them).
const (
	sgrReset   = "\x1b[0m"
	sgrDefault = "\x1b[39m"
	sgrRed     = "\x1b[31m"
	sgrGreen   = "\x1b[32m"
	sgrYellow  = "\x1b[33m"
	sgrBlue    = "\x1b[34m"
	sgrGrey    = "\x1b[90m"
)

// taskColour: passed green; failed, timed out and lost red; running and
// assigned blue; cancelled grey; queued yellow.
func taskColour(st raftfsm.TaskState) string {
	switch st {
	case raftfsm.TaskPassed:
		return sgrGreen
	case raftfsm.TaskFailed, raftfsm.TaskTimedOut, raftfsm.TaskLost, raftfsm.TaskInfraFailed:
		return sgrRed
	case raftfsm.TaskRunning, raftfsm.TaskAssigned:
		return sgrBlue
	case raftfsm.TaskCancelled:
		return sgrGrey
	case raftfsm.TaskQueued:
		return sgrYellow
	}
	return sgrDefault
}

// cell colours text by st; every cell it makes (the header's too, in the
// default colour) is the same number of bytes longer than its text.
func (p palette) cell(st raftfsm.TaskState, text string) string {
	if !p.on {
		return text
	}
	return taskColour(st) + text + sgrReset
}

// status colours a job's status: passed green, failed and error red,
// pending blue (in progress).
func (p palette) status(s raftfsm.JobStatus) string {
	if !p.on {
		return string(s)
	}
	c := sgrBlue
	switch s {
	case raftfsm.StatusPassed:
		c = sgrGreen
	case raftfsm.StatusFailed, raftfsm.StatusError:
		c = sgrRed
	}
	return c + string(s) + sgrReset
}

// progress sums a job's tasks up: "7/10 tasks done, 1 failed, 2 running",
// then queued and cancelled counts when there are any. Failed counts every
// task that ended badly (failed, timed out, lost); running counts assigned
// ones too.
func progress(d api.JobDetail) string {
	var done, failed, running, queued, cancelled int
	for _, t := range d.Tasks {
		switch t.State {
		case raftfsm.TaskPassed:
			done++
		case raftfsm.TaskFailed, raftfsm.TaskTimedOut, raftfsm.TaskLost, raftfsm.TaskInfraFailed:
			done++
			failed++
		case raftfsm.TaskCancelled:
			done++
			cancelled++
		case raftfsm.TaskRunning, raftfsm.TaskAssigned:
			running++
		case raftfsm.TaskQueued:
			queued++
		}
	}
	s := fmt.Sprintf("%d/%d tasks done, %d failed, %d running", done, len(d.Tasks), failed, running)
	if queued > 0 {
		s += fmt.Sprintf(", %d queued", queued)
	}
	if cancelled > 0 {
		s += fmt.Sprintf(", %d cancelled", cancelled)
	}
	return s
}
