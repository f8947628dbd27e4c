package runner

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// A task says that its infrastructure failed, not its code (a board that
// did not answer, a flaky USB hub, a licence server down), by exiting with
// InfraExitCode: sysexits' EX_TEMPFAIL, as LAVA and mail systems use it.
// The attempt then ends infra_failed and the ledger retries it on another
// node of its topic (bounded by --max-infra-retries, counted apart from
// node loss) before the task, and its job, turn error. `ourci-node fail
// --infra REASON` prints an InfraMarker line with the reason and exits so;
// the reason (as masked in the log) is what the attempt's end reports.
const (
	InfraExitCode = 75
	InfraMarker   = "::ourci-infra::"
)

// maxInfraLine bounds the line the sniffer holds: a longer one is no marker.
const maxInfraLine = 1 << 10

// infraSniffer passes a task's (masked) output through and keeps the
// reason of the last InfraMarker line.
type infraSniffer struct {
	w io.Writer

	mu     sync.Mutex
	line   []byte
	long   bool // the current line passed maxInfraLine
	reason string
}

func (s *infraSniffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		part := rest
		if i >= 0 {
			part = rest[:i]
		}
		if !s.long && len(s.line)+len(part) <= maxInfraLine {
			s.line = append(s.line, part...)
		} else {
			s.long, s.line = true, s.line[:0]
		}
		if i < 0 {
			break
		}
		if r, ok := bytes.CutPrefix(bytes.TrimRight(s.line, "\r"), []byte(InfraMarker)); ok && !s.long {
			s.reason = strings.TrimSpace(string(r))
		}
		s.line, s.long, rest = s.line[:0], false, rest[i+1:]
	}
	s.mu.Unlock()
	return s.w.Write(p)
}

// Reason is the last marker's reason ("" when none was printed).
func (s *infraSniffer) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}
