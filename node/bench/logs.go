package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/raftfsm"
)

// logsMeasure: a task's output through the mesh, from its first byte to
// its log sealed, recorded in the ledger and streamed to another node as
// it ran (--log-copies 2), beside the same bytes copied to a local file
// in the same run: one task, then several at once sharing the same bytes.
func (r *run) logsMeasure(ctx context.Context, m *mesh) error {
	const M = MLogs
	size := int64(r.o.LogMiB) << 20
	one := filepath.Join(r.dir, "build-output.txt")
	lines, err := writeBuildOutput(one, size)
	if err != nil {
		return err
	}
	leader, err := m.waitLeader(ctx)
	if err != nil {
		return err
	}
	target := (leader + 1) % len(m.nodes) // a follower runs the tasks
	w := newWatcher(m.nodes[leader].FSM())
	defer w.close()

	// Floor: the same bytes into a local file, by the same kind of process.
	fstart := time.Now()
	out := exec.CommandContext(ctx, "sh", "-c", `cat "$1" > "$2"`, "sh", one, filepath.Join(r.dir, "build-output.copy"))
	if b, err := out.CombinedOutput(); err != nil {
		return fmt.Errorf("floor: %v: %s", err, b)
	}
	floor := time.Since(fstart)

	sealedRun := func(k int) (time.Duration, []raftfsm.LogRef, error) {
		cl := m.cliClient(target) // retries a spawn across a change of leader, as the CLI does
		start := time.Now()
		tasks := make([]string, k)
		for i := range k {
			res, err := cl.Spawn(ctx, api.SpawnRequest{Topic: "bench-" + m.name(target), Args: []string{"cat " + one}, Key: randKey()})
			if err != nil {
				return 0, nil, err
			}
			tasks[i] = res.Task
		}
		refs := make([]raftfsm.LogRef, k)
		var wg sync.WaitGroup
		var firstErr error
		var mu sync.Mutex
		for i, id := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := w.until(ctx, 5*time.Minute, "task "+id+"'s log sealed", func(s *raftfsm.State) bool {
					if t := s.Tasks[id]; t != nil && len(t.Logs) > 0 {
						refs[i] = t.Logs[0]
						return true
					}
					return false
				})
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start), refs, firstErr
	}
	oneDur, oneRefs, err := sealedRun(1)
	if err != nil {
		return err
	}
	const many = 8
	manyDur, manyRefs, err := sealedRun(many)
	if err != nil {
		return err
	}
	mib := func(bytes int64, d time.Duration) float64 { return float64(bytes) / (1 << 20) / d.Seconds() }
	floorRate := mib(size, floor)
	oneRate, manyRate := mib(size, oneDur), mib(many*size, manyDur)
	r.row(Row{Key: "log_mibps_one", Measure: "task output → sealed log, one task", Unit: "MiB/s", OurCI: oneRate, Floor: ptr(floorRate), Ratio: ptr(oneRate / floorRate),
		Target: "-", Result: "info", FloorIs: "cat of the same bytes into a local file"})
	r.row(Row{Key: "log_mibps_many", Measure: fmt.Sprintf("task output → sealed logs, %d tasks at once", many), Unit: "MiB/s", OurCI: manyRate, Floor: ptr(floorRate), Ratio: ptr(manyRate / floorRate),
		Target: "-", Result: "info", FloorIs: "cat of the same bytes into a local file"})
	r.row(Row{Key: "log_lines_per_s", Measure: fmt.Sprintf("task output lines → sealed, %d tasks at once", many), Unit: "lines/s", OurCI: float64(many*lines) / manyDur.Seconds(), Target: "-", Result: "info"})
	var raw, sealed int64
	for _, ref := range append(oneRefs, manyRefs...) {
		raw += ref.Bytes
		sealed += ref.Size
	}
	r.note(M, "%s of build-like output (%d lines) per task, run on %s: one task %.2f s spawn → sealed, %d at once %.2f s; the floor copied it into a local file in %.3f s",
		sizeName(r.o.LogMiB), lines, m.name(target), oneDur.Seconds(), many, manyDur.Seconds(), floor.Seconds())
	r.note(M, "sealed (zstd, every line timed): %d output bytes in %d blob bytes, ratio %.2f", raw, sealed, float64(raw)/float64(sealed))
	return nil
}

// writeBuildOutput writes about size bytes of compiler-like lines to path
// and returns how many lines it wrote.
func writeBuildOutput(path string, size int64) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	var n int64
	lines := 0
	for i := 0; n < size; i++ {
		var s string
		switch i % 7 {
		case 0:
			s = "[" + strconv.Itoa(i%100) + "%] Building C object src/CMakeFiles/mongoose.dir/mongoose_" + strconv.Itoa(i%311) + ".c.o\n"
		case 3:
			s = "src/net/http_" + strconv.Itoa(i%97) + ".c:" + strconv.Itoa(100+i%900) + ":12: warning: unused variable 'len' [-Wunused-variable]\n"
		default:
			s = "cc -O2 -Wall -Iinclude -DMG_ENABLE_LINES=1 -c src/module_" + strconv.Itoa(i%541) + ".c -o build/module_" + strconv.Itoa(i%541) + ".o\n"
		}
		k, err := bw.WriteString(s)
		if err != nil {
			return 0, err
		}
		n += int64(k)
		lines++
	}
	return lines, bw.Flush()
}
