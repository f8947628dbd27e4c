package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ourci/ourci/node/api"
)

// renderStatus prints the mesh and recent jobs.
func renderStatus(w io.Writer, st api.Status) {
	leader := st.Leader
	if leader == "" {
		leader = "(none: election in progress)"
	}
	fmt.Fprintf(w, "mesh: %d members, leader %s; this node %s is %s (ledger index %d)\n\n", len(st.Members), leader, st.Node, st.RaftRole, st.Index)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT\tSLOTS\tBLOBS\tTOPICS\tHTTP")
	for _, m := range st.Members {
		name := m.Name
		if m.Leader {
			name += " *"
		}
		if !m.Alive {
			name += " (not seen by gossip)"
		}
		if m.Draining {
			name += " (draining)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d (%s)\t%s\t%s\n", name, m.Raft, m.Used, m.Slots, m.Blobs, humanBytes(m.Bytes), strings.Join(m.Topics, " "), m.HTTP)
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
func renderJob(w io.Writer, d api.JobDetail) {
	j := d.Job
	fmt.Fprintf(w, "job %s: %s, %s · %d tasks (%d passed, %d failed, %d open) · %s", j.ID, j.State, j.Status, j.Tasks, j.Passed, j.Failed, j.Open, jobDuration(j))
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
	fmt.Fprintln(tw, "TASK\tSTATE\tNODE\tATTEMPT\tDURATION\tEXIT\tTOPIC\tARGS")
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
		fmt.Fprintf(tw, "%s%s%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", prefix, branch, t.ID, state, node, t.Attempt, taskDuration(t), exit, t.Topic, strings.Join(t.Args, " "))
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
