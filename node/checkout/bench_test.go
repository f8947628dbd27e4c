package checkout

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	benchCommits        = 200
	benchFilesPerCommit = 10 // 2000 files in all
	benchFileBytes      = 4096
)

// bigUpstream makes a bare repository of benchCommits commits on main, each
// adding benchFilesPerCommit files of benchFileBytes pseudo-random text, with
// one git fast-import.
func bigUpstream(b *testing.B) (bare string) {
	b.Helper()
	bare = filepath.Join(b.TempDir(), "big.git")
	git(b, "", "init", "-q", "--bare", "-b", "main", bare)
	cmd := exec.Command("git", "-C", bare, "fast-import", "--quiet")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	rng := rand.New(rand.NewSource(1))
	words := strings.Fields("build test spawn task blob node mesh raft leader commit mirror fetch clone " +
		"workspace docker image topic slot attempt ledger gossip artifact firmware esp8266 posix")
	content := func() []byte {
		var sb strings.Builder
		for sb.Len() < benchFileBytes {
			sb.WriteString(words[rng.Intn(len(words))])
			if rng.Intn(12) == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		return []byte(sb.String())
	}
	mark := 0
	for c := 0; c < benchCommits; c++ {
		blobs := make([]int, benchFilesPerCommit)
		for f := range blobs {
			mark++
			blobs[f] = mark
			data := content()
			fmt.Fprintf(w, "blob\nmark :%d\ndata %d\n", mark, len(data))
			w.Write(data)
			w.WriteString("\n")
		}
		msg := fmt.Sprintf("commit %d", c)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter t <t@t> %d +0000\ndata %d\n%s\n", 1700000000+c, len(msg), msg)
		for f, m := range blobs {
			fmt.Fprintf(w, "M 100644 :%d dir%03d/file%02d.txt\n", m, c%50, c/50*benchFilesPerCommit+f)
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	git(b, bare, "gc", "-q") // one pack, as a hosted repository would serve
	return bare
}

// BenchmarkWorkspace measures what the 2nd..Nth task of a job waits for to
// get its workspace from a warm mirror, against a cold `git clone` of the same
// repository in the same run (over file://, so the cold number is a lower bound:
// no network, page cache warm).
func BenchmarkWorkspace(b *testing.B) {
	t0 := time.Now()
	bare := bigUpstream(b)
	gen := time.Since(t0)
	repo := "file://" + bare
	sha := git(b, bare, "rev-parse", "main")
	packKiB := git(b, bare, "count-objects", "-v")
	ctx := context.Background()
	m := &Mirrors{Dir: b.TempDir()}
	tmp := b.TempDir()

	// Task 1 of the job: clones the mirror, then makes its workspace.
	t0 = time.Now()
	if err := m.Checkout(ctx, repo, sha, "main", filepath.Join(tmp, "task1")); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)

	var warm, cold time.Duration
	n := 0
	for b.Loop() {
		n++
		t0 := time.Now()
		dst := filepath.Join(tmp, fmt.Sprint("task", n+1))
		if err := m.Checkout(ctx, repo, sha, "main", dst); err != nil {
			b.Fatal(err)
		}
		warm += time.Since(t0)

		t0 = time.Now()
		git(b, "", "clone", "-q", "-b", "main", "--", repo, filepath.Join(tmp, fmt.Sprint("cold", n)))
		cold += time.Since(t0)
	}
	if got := m.RemoteCalls(); got != 1 {
		b.Fatalf("RemoteCalls = %d, want 1 (task 1's mirror clone)", got)
	}
	files := git(b, filepath.Join(tmp, "task2"), "ls-files")
	nfiles := strings.Count(files, "\n") + 1

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(ms(warm), "ms/workspace")
	b.ReportMetric(ms(cold), "ms/cold-clone")
	size := ""
	for _, l := range strings.Split(packKiB, "\n") {
		if v, ok := strings.CutPrefix(l, "size-pack: "); ok {
			size = v + " KiB packed"
		}
	}
	fmt.Printf("\nrepository: %d commits, %d files, %s (generated in %v)\n", benchCommits, nfiles, size, gen.Round(time.Millisecond))
	fmt.Printf("%-44s %10s\n", "what (mean of "+fmt.Sprint(n)+" runs)", "ms")
	fmt.Printf("%-44s %10.1f\n", "task 1: mirror clone + workspace", float64(first.Microseconds())/1000)
	fmt.Printf("%-44s %10.1f\n", "tasks 2..N: workspace from warm mirror", ms(warm))
	fmt.Printf("%-44s %10.1f\n", "cold git clone (file://, same run)", ms(cold))
	fmt.Printf("%-44s %10.1fx\n", "speed-up of a warm workspace", ms(cold)/ms(warm))
}
