package github

import (
	"fmt"
	"strings"
	"time"
)

// Report is what a check run's summary shows of a job.
type Report struct {
	Job, JobURL string
	Headline    string       // one line: the outcome and the counts
	Tasks       []ReportTask // in tree order (parents before children)
	Failed      []FailedTask // failed tasks with their logs' last lines
}

// ReportTask is one row of the task tree.
type ReportTask struct {
	ID, Name, URL string
	Depth         int // 0 for the root
	State         string
	Duration      time.Duration // 0: did not run (or still runs)
}

// FailedTask is a failed task's last log lines.
type FailedTask struct {
	ID, Name, URL string
	Lines         []string
}

// Bounds of the summary.
const (
	maxReportTasks = 200
	maxFailedShown = 10
	maxLineChars   = 300
)

// Markdown renders the report as a check run summary: the headline, the
// task tree as a table (state, duration, a link to each task's page) and
// the failed tasks' last lines, within GitHub's 65535 characters.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** · job [%s](%s)\n\n", mdEscape(r.Headline), mdEscape(r.Job), r.JobURL)
	b.WriteString("| Task | State | Time |\n|---|---|---|\n")
	for i, t := range r.Tasks {
		if i == maxReportTasks {
			fmt.Fprintf(&b, "| … %d more tasks: [the job's page](%s) | | |\n", len(r.Tasks)-i, r.JobURL)
			break
		}
		indent := strings.Repeat("&nbsp;&nbsp;", t.Depth)
		if t.Depth > 0 {
			indent += "└ "
		}
		dur := ""
		if t.Duration > 0 {
			dur = t.Duration.Round(time.Second).String()
			if t.Duration < time.Second {
				dur = t.Duration.Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(&b, "| %s[%s](%s) | %s | %s |\n", indent, cell(t.Name), t.URL, cell(t.State), dur)
	}
	for i, f := range r.Failed {
		if i == maxFailedShown {
			fmt.Fprintf(&b, "\n… and %d more failed tasks.\n", len(r.Failed)-i)
			break
		}
		fmt.Fprintf(&b, "\n### Failed: [%s](%s)\n\n", mdEscape(f.Name), f.URL)
		if len(f.Lines) == 0 {
			b.WriteString("(no output)\n")
			continue
		}
		lines := make([]string, len(f.Lines))
		for j, l := range f.Lines {
			lines[j] = Truncate(l, maxLineChars)
		}
		body := strings.Join(lines, "\n")
		fence := "```"
		for strings.Contains(body, fence) {
			fence += "`"
		}
		fmt.Fprintf(&b, "%stext\n%s\n%s\n", fence, body, fence)
	}
	return Truncate(b.String(), MaxOutputText)
}

// cell makes s safe in a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(mdEscape(s), "|", "\\|")
}

// mdEscape escapes the characters that would turn s into markup or a link.
func mdEscape(s string) string {
	return strings.NewReplacer("\\", "\\\\", "[", "\\[", "]", "\\]", "<", "&lt;", ">", "&gt;", "*", "\\*", "_", "\\_", "`", "\\`").Replace(s)
}

// LastLines is the last n lines of log (the final one may lack its
// newline), without ANSI colour codes.
func LastLines(log []byte, n int) []string {
	s := strings.TrimRight(string(log), "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = stripANSI(strings.TrimRight(l, "\r"))
	}
	return lines
}

func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
