package raftfsm

import (
	"strings"
	"testing"
)

// SplitUsage counts a sealed log apart from artifacts, per holder.
func TestSplitUsage(t *testing.T) {
	l := newLedger(t)
	l.ok(spawnRoot("job-1", "root"))
	art, log := strings.Repeat("a", 64), strings.Repeat("b", 64)
	l.ok(blobAdded(art, 100, "n1", "job-1", "fw.bin"))
	l.ok(Command{Type: CmdLogSealed, LogSealed: &LogSealed{Task: "root", At: at(1), Log: LogRef{Attempt: 1, Hash: log, Size: 10, Bytes: 80, Lines: 2, Node: "n2"}}})
	l.ok(blobAdded(log, 10, "n1", "", ""))
	arts, logs := l.s.SplitUsage()
	for _, c := range []struct {
		name string
		got  [2]int64
		want [2]int64
	}{
		{"n1 artifacts", arts["n1"], [2]int64{1, 100}},
		{"n1 logs", logs["n1"], [2]int64{1, 10}},
		{"n2 artifacts", arts["n2"], [2]int64{0, 0}},
		{"n2 logs", logs["n2"], [2]int64{1, 10}},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}
