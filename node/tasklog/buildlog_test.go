package tasklog

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// buildOutput is deterministic, realistic CI output of about n bytes:
// compiler commands with long paths, warnings with their source excerpt
// and caret, CMake-style percentages, Go test results, timestamped log
// lines, and download progress bars redrawn with '\r'.
func buildOutput(n int) string {
	var b strings.Builder
	for _, a := range buildArrivals(n) {
		b.Write(a.p)
	}
	return b.String()
}

// buildArrivals is buildOutput as it arrives: bursts of lines, a few ms
// to a second apart, progress bars a redraw per write.
func buildArrivals(n int) []arrival {
	r := rand.New(rand.NewPCG(17, 42))
	dirs := []string{"src/net/http", "src/core/engine", "internal/store/bolt", "third_party/zlib", "pkg/api/v2", "cmd/server", "lib/crypto/tls", "tools/gen"}
	files := []string{"server", "client", "handler", "engine", "cache", "index", "codec", "util", "parse", "sched"}
	vars := []string{"tmp", "n", "err", "buf", "ctx", "i", "result"}
	at := t0
	var out []arrival
	var burst strings.Builder
	total := 0
	flush := func() {
		if burst.Len() > 0 {
			out = append(out, arrival{at, []byte(burst.String())})
			total += burst.Len()
			burst.Reset()
		}
		at = at.Add(time.Duration(r.Int64N(int64(300 * time.Millisecond))))
	}
	path := func() string {
		return fmt.Sprintf("%s/%s_%s.c", dirs[r.IntN(len(dirs))], files[r.IntN(len(files))], files[r.IntN(len(files))])
	}
	pct := 0
	for total < n {
		switch k := r.IntN(100); {
		case k < 35:
			p := path()
			fmt.Fprintf(&burst, "gcc -O2 -g -Wall -Wextra -Iinclude -Ithird_party/zlib -DNDEBUG -c %s -o build/%s.o\n", p, strings.TrimSuffix(p, ".c"))
		case k < 45:
			p, line, col, v := path(), 1+r.IntN(2000), 1+r.IntN(60), vars[r.IntN(len(vars))]
			fmt.Fprintf(&burst, "%s:%d:%d: warning: unused variable '%s' [-Wunused-variable]\n", p, line, col, v)
			fmt.Fprintf(&burst, "%5d |     int %s = compute(x, %d);\n      |         ^~~\n", line, v, r.IntN(100))
		case k < 60:
			pct = min(100, pct+r.IntN(3))
			fmt.Fprintf(&burst, "[%3d%%] Building C object %s/CMakeFiles/%s.dir/%s.o\n", pct, dirs[r.IntN(len(dirs))], files[r.IntN(len(files))], files[r.IntN(len(files))])
		case k < 72:
			fmt.Fprintf(&burst, "%s INFO  worker %d: task %s-%04d done in %dms (cache hit ratio %.2f)\n",
				at.Format("2006-01-02T15:04:05.000Z07:00"), r.IntN(8), files[r.IntN(len(files))], r.IntN(10000), r.IntN(900), r.Float64())
		case k < 82:
			fmt.Fprintf(&burst, "--- PASS: Test%s%s (%.2fs)\n", strings.ToUpper(files[r.IntN(len(files))][:1]), files[r.IntN(len(files))][1:], r.Float64())
			if r.IntN(4) == 0 {
				fmt.Fprintf(&burst, "ok  \tgithub.com/acme/widget/%s\t%.3fs\n", dirs[r.IntN(len(dirs))], 3*r.Float64())
			}
		case k < 85:
			flush()
			size := 5 + r.Float64()*80
			for i := 0; i <= 20; i++ {
				bar := strings.Repeat("=", i) + ">" + strings.Repeat(" ", 20-i)
				fmt.Fprintf(&burst, "Downloading layer %d/7 [%s] %3d%% %.1fMiB/%.1fMiB\r", 1+r.IntN(7), bar, i*5, size*float64(i)/20, size)
				flush()
			}
			burst.WriteString("\n")
		default:
			flush()
		}
	}
	flush()
	return out
}
