package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/node/bench"
	"github.com/ourci/ourci/node/meshtls"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// BenchmarkBlobTransfer moves a 1 GiB blob from one real node to another
// (the receiver fetches it over HTTP, verifies its SHA-256 while streaming,
// fsyncs and stores it) and, in the same run, measures the floor beneath:
// a plain loopback TCP copy of the same bytes from the same file, and this
// machine's SHA-256 speed. It prints both nodes' peak RSS.
//
//	go test -run '^$' -bench BlobTransfer -benchtime 1x ./e2e/
//
// OURCI_BENCH_BLOB_MIB changes the size (default 1024).
func BenchmarkBlobTransfer(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("OURCI_BENCH_BLOB_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "blob.bin")
	sum, err := bench.WriteRandomFile(file, size)
	if err != nil {
		b.Fatal(err)
	}

	secret := filepath.Join(dir, "secret")
	out, err := exec.Command(binPath, "keygen").Output()
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(secret, out, 0o600)
	a := startBenchNode(b, dir, "a", secret, "")
	peer := startBenchNode(b, dir, "b", secret, a.gossip)
	waitMembers(b, peer.http, secret, 2)

	put := time.Now()
	cli(b, a.http, secret, "blob", "put", file)
	putDur := time.Since(put)

	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 {
			b.Fatal("run with -benchtime 1x: one transfer per run")
		}
		b.StartTimer()
		start := time.Now()
		pull(b, peerClient(b, dir, secret), peer.peer, secret, sum)
		pullDur := time.Since(start)
		b.StopTimer()

		// The floors, measured in this run by the same code `ourci-node bench` uses.
		tcpDur, err1 := bench.LoopbackCopy(file)
		diskDur, err2 := bench.DiskCopy(file, filepath.Join(dir, "copy.bin"))
		hashDur, err3 := bench.HashFile(file)
		if err := errors.Join(err1, err2, err3); err != nil {
			b.Fatal(err)
		}
		mib := float64(size) / (1 << 20)
		rate := func(d time.Duration) float64 { return mib / d.Seconds() }
		b.ReportMetric(rate(pullDur), "node-MiB/s")
		b.ReportMetric(rate(tcpDur), "tcp-MiB/s")
		b.ReportMetric(rate(diskDur), "disk-MiB/s")
		b.ReportMetric(rate(hashDur), "sha256-MiB/s")
		fmt.Printf("\nblob transfer, %.0f MiB, %s\n", mib, time.Now().Format(time.RFC3339))
		fmt.Printf("%-44s %10s %10s\n", "measure", "MiB/s", "seconds")
		fmt.Printf("%-44s %10.0f %10.2f\n", "put into node a (hash + fsync + rename)", rate(putDur), putDur.Seconds())
		fmt.Printf("%-44s %10.0f %10.2f\n", "node a -> node b (fetch, verify, fsync)", rate(pullDur), pullDur.Seconds())
		fmt.Printf("%-44s %10.0f %10.2f\n", "loopback TCP copy of the same file", rate(tcpDur), tcpDur.Seconds())
		fmt.Printf("%-44s %10.0f %10.2f\n", "copy of the same file to disk + fsync", rate(diskDur), diskDur.Seconds())
		fmt.Printf("%-44s %10.0f %10.2f\n", "sha256 of the same file (one core)", rate(hashDur), hashDur.Seconds())
		fmt.Printf("node-to-node / loopback TCP: %.2f   / disk copy: %.2f   / sha256: %.2f\n",
			tcpDur.Seconds()/pullDur.Seconds(), diskDur.Seconds()/pullDur.Seconds(), hashDur.Seconds()/pullDur.Seconds())
		fmt.Printf("peak RSS: node a %s, node b %s\n", peakRSS(a.cmd.Process.Pid), peakRSS(peer.cmd.Process.Pid))
	}
}

type benchNode struct {
	cmd                *exec.Cmd
	gossip, http, peer string // peer: the Raft port, where the peer API is
}

func startBenchNode(b *testing.B, dir, name, secret, peer string) *benchNode {
	b.Helper()
	logPath := filepath.Join(dir, name+".log")
	for try := 1; ; try++ {
		p := freePorts(b, 1)
		g, r, h := strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])
		args := []string{"join", "--name", name, "--data-dir", filepath.Join(dir, name),
			"--bind", "127.0.0.1:" + g, "--raft", "127.0.0.1:" + r, "--http", "127.0.0.1:" + h,
			"--secret-file", secret, "--blob-replicas", "1"}
		if peer != "" {
			args = append(args, "--peer", peer)
		}
		cmd := exec.Command(binPath, args...)
		logf, err := os.Create(logPath)
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			logf.Close()
			close(exited)
		}()
		n := &benchNode{cmd: cmd, gossip: "127.0.0.1:" + g, http: "http://127.0.0.1:" + h, peer: "127.0.0.1:" + r}
		// The ports were free when picked; another process may have taken
		// one before the node bound it: then the node starts on new ones.
		gone := false
		wait.For(b, 30*time.Second, name+" to serve HTTP or exit", func() (bool, string) {
			select {
			case <-exited:
				gone = true
				return true, ""
			default:
			}
			return (&node{url: n.http}).serves(), name + " does not serve HTTP on " + n.http + " yet"
		})
		if !gone {
			b.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return n
		}
		if log := tail(logPath, 30); try == startTries || !strings.Contains(log, "address already in use") {
			b.Fatalf("%s exited at start:\n%s", name, log)
		}
	}
}

func cli(b *testing.B, node, secret string, args ...string) string {
	b.Helper()
	full := append(args, "--node", node, "--secret-file", secret)
	out, err := exec.Command(binPath, full...).CombinedOutput()
	if err != nil {
		b.Fatalf("ourci-node %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func waitMembers(b *testing.B, node, secret string, n int) {
	b.Helper()
	wait.For(b, 30*time.Second, fmt.Sprintf("a mesh of %d with a leader", n), func() (bool, string) {
		out, err := exec.Command(binPath, "status", "--json", "--node", node, "--secret-file", secret).Output()
		if err == nil && strings.Count(string(out), `"raft_addr"`) == n && !strings.Contains(string(out), `"leader": ""`) {
			return true, ""
		}
		return false, fmt.Sprintf("status: %v %s", err, out)
	})
}

// peerClient calls nodes' peer API as a node does: with a node certificate
// that `ourci-node tls cert --from-secret` issues from the mesh's CA.
func peerClient(b *testing.B, dir, secretFile string) *http.Client {
	b.Helper()
	certs := filepath.Join(dir, "certs")
	for _, args := range [][]string{
		{"tls", "ca", "--from-secret", "--out", certs},
		{"tls", "cert", "bench-client", "--from-secret", "--out", certs},
	} {
		if out, err := exec.Command(binPath, append(args, "--secret-file", secretFile)...).CombinedOutput(); err != nil {
			b.Fatalf("ourci-node %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(certs, name))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	ca, err := meshtls.ParseCA(read("ca.pem"), nil)
	if err != nil {
		b.Fatal(err)
	}
	self, err := meshtls.NewPeer(ca, read("bench-client.pem"), read("bench-client-key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: self.ClientConfig(meshtls.ProtoHTTP)}}
}

// pull asks the node at peerAddr to fetch the blob from its holder, on its
// peer API as the leader's replication does, and waits until stored.
func pull(b *testing.B, c *http.Client, peerAddr, secretFile, hash string) {
	b.Helper()
	tok := clusterToken(b, secretFile)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+peerAddr+"/v1/internal/blobs/"+hash+"/pull", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("pull: %s: %s", resp.Status, body)
	}
}

// clusterToken derives the cluster token the way the CLI does, through the
// binary itself (the test does not import the daemon).
func clusterToken(b *testing.B, secretFile string) string {
	b.Helper()
	out, err := exec.Command(binPath, "token", "--secret-file", secretFile).Output()
	if err != nil {
		b.Fatalf("ourci-node token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// peakRSS reads a process's high-water resident set size.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
