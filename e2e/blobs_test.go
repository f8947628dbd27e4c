package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourci/ourci/scripts"

	"github.com/ourci/ourci/node/nodetest/wait"
)

// TestBlobHandOffSurvivesNodeLoss is the seed's hand-off on three nodes: both
// esp8266 builds run on node1, which uploads each firmware and the test driver
// under names in the job; the tests run on node3 only, whose agent fetches
// driver and firmware with a plain curl of BLOB_URL. Then the CLI checks the
// named blobs, hash references across nodes, the errors a user gets, and that
// every blob reaches a second node, so that after node1 is killed they are
// still fetched through node2.
func TestBlobHandOffSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := scripts.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	repo := makeSeedRepo(t)
	m := startMesh(t, []nodeSpec{
		{Name: "node1", Topics: []string{buildTopic}, Slots: 8, Env: buildEnv(t)},
		{Name: "node2", Topics: []string{"other"}},
		rigNode(t, "node3", binPath),
	})

	// The pipeline: every build on node1, the hardware tests on node3.
	job, _ := m.spawn(t, 0, "--repo", repo.bare, "--rev", "main", "-t", buildTopic, "--", "ci/all.sh")
	v := m.waitClosed(t, 0, job, 2*time.Minute)
	if v.Job.Status != "passed" || len(v.Tasks) != 10 {
		t.Fatalf("want the 10 tasks of the seed's tree and status passed: %v", v)
	}
	tests := map[string]taskView{} // variant -> its hardware test
	for _, tv := range v.Tasks {
		l := seedLabel(tv)
		if tv.State != "passed" {
			t.Errorf("%s: state %q, want passed: %v", l, tv.State, tv)
		}
		if variant, ok := strings.CutPrefix(l, "test "); ok {
			tests[variant] = tv
			if tv.Node != "node3" || strings.Join(tv.Args, " ") != handOffArgs(variant) {
				t.Errorf("%s: node %q args %q, want node3 and %q", l, tv.Node, tv.Args, handOffArgs(variant))
			}
		} else if tv.Node != "node1" {
			t.Errorf("%s: ran on %q, want node1 (the only build node)", l, tv.Node)
		}
	}
	for _, variant := range []string{"esp8266", "esp8266-ota"} {
		tv, ok := tests[variant]
		if !ok {
			t.Fatalf("no hardware test of %s: %v", variant, v)
		}
		checkHandOffLog(t, m, 1, tv, variant, "none", repo.version("v1"))
	}

	// The names resolve within the job, through the uploader: each firmware
	// holds what its build wrote, and both driver names give the driver.
	driver, err := os.ReadFile(filepath.Join(repo.work, "ci", "fw", "esp8266_test_driver.sh"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{} // blob name -> sha256 hex of its bytes
	distinct := map[string]bool{}
	for _, variant := range []string{"esp8266", "esp8266-ota"} {
		fw := "fw-" + variant + ".tar.gz"
		data := m.blobGet(t, 0, fw, "--job", job)
		if got, want := tarFile(t, data, "firmware/0x00000.bin"), "board=esp-12e\nota="+variantOTA(variant)+"\nsdk=none\n"; !strings.HasPrefix(got, want) {
			t.Errorf("%s: firmware/0x00000.bin holds %q, want it to start with %q", fw, got, want)
		}
		drv := "test-driver-" + variant + ".sh"
		if got := m.blobGet(t, 0, drv, "--job", job); !bytes.Equal(got, driver) {
			t.Errorf("%s: %d bytes that differ from ci/fw/esp8266_test_driver.sh", drv, len(got))
		}
		named[fw], named[drv] = sha256Hex(data), sha256Hex(driver)
		distinct[named[fw]], distinct[named[drv]] = true, true
	}
	if len(distinct) != 3 {
		t.Errorf("want 3 distinct blobs (two firmwares, one driver), got %v", named)
	}

	// A blob put through node1 is fetched by hash through node2, byte for byte.
	cross := m.randomFile(t, "cross.bin", 1<<20)
	crossRef := m.blobPut(t, 0, cross)
	distinct[strings.TrimPrefix(crossRef, "sha256:")] = true
	want, _ := os.ReadFile(cross)
	if got := m.blobGet(t, 1, crossRef); !bytes.Equal(got, want) {
		t.Errorf("blob get %s through node2: %d bytes that differ from the %d put through node1", crossRef, len(got), len(want))
	}
	if got := m.blobGet(t, 1, strings.TrimPrefix(crossRef, "sha256:")); !bytes.Equal(got, want) {
		t.Errorf("blob get <hex> through node2: %d bytes that differ from the %d put", len(got), len(want))
	}

	// functions.sh with the real binary, in a task on node2: blob_download by
	// hash of a blob put in its job through node1 while it waits, blob_upload
	// under a name, blob_download of that name; a blob outside its job
	// (crossRef, put in no job) is not found for it.
	functions := filepath.Join(dir, "functions.sh")
	inJob := m.randomFile(t, "injob.bin", 64<<10) // small: node2 holding 2 MiB means it holds the lone blob (below)
	inJobData, err := os.ReadFile(inJob)
	if err != nil {
		t.Fatal(err)
	}
	flag := filepath.Join(m.dir, "injob.put")
	script := fmt.Sprintf(`set -eu
. %s
while [ ! -f %s ]; do sleep 0.05; done
blob_download %s a.bin
sha256sum a.bin
ref=$(blob_upload a.bin copies/a.bin)
echo "uploaded $ref"
mkdir d
cd d
blob_download copies/a.bin
cmp a.bin ../a.bin
echo "round trip ok"
if blob_download no-such-blob 2>err; then echo "unexpected success"; exit 1; fi
cat err
if blob_download %s other.bin 2>err; then echo "another job's blob: unexpected success"; exit 1; fi
cat err
`, shq(functions), shq(flag), "sha256:"+sha256Hex(inJobData), crossRef)
	fjob, ftask := m.spawn(t, 1, "-t", "other", "--", script)
	inJobRef := m.blobPut(t, 0, inJob, "--job", fjob)
	distinct[strings.TrimPrefix(inJobRef, "sha256:")] = true
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fv := m.waitClosed(t, 1, fjob, time.Minute)
	lr := m.runOn(t, 1, "logs", ftask)
	if fv.Job.Status != "passed" {
		t.Errorf("functions.sh task on node2: %v\nlog: %v", fv, lr)
	}
	for _, line := range []string{
		strings.TrimPrefix(inJobRef, "sha256:") + "  a.bin\n",
		"uploaded " + inJobRef + "\n",
		"round trip ok\n",
		"blob_download: downloading 'no-such-blob' to 'no-such-blob' failed (exit 5)",
		"refers to no blob " + crossRef,
	} {
		if !strings.Contains(lr.stdout, line) {
			t.Errorf("functions.sh task log lacks %q: %v", line, lr)
		}
	}

	// What a user gets wrong: an unknown name or hash is "not found" (5) and
	// writes no file; a name that climbs out is a bad request (2).
	out := filepath.Join(m.dir, "never")
	for _, ref := range []string{"no-such.tar.gz", "sha256:" + strings.Repeat("0", 64)} {
		r := m.runOn(t, 1, "blob", "get", ref, "--job", job, "-o", out)
		if r.code != 5 || !strings.Contains(r.stderr, strings.TrimPrefix(ref, "sha256:")) {
			t.Errorf("blob get %s: %v; want exit 5 and a message naming it", ref, r)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("blob get %s failed but wrote %s", ref, out)
		}
	}
	if r := m.runOn(t, 0, "blob", "put", cross, "--name", "../x"); r.code != 2 || !strings.Contains(r.stderr, "../x") {
		t.Errorf("blob put --name ../x: %v; want exit 2 and a message naming the name", r)
	}

	// A blob only node1 has, which no one fetches: it survives node1 only if
	// the mesh copies it to a second node by itself. It is bigger than all the
	// other blobs together, so a member other than node1 holds it exactly when
	// its blob_bytes reach its size.
	const loneSize = 2 << 20
	lone := m.randomFile(t, "lone.bin", loneSize)
	loneRef := m.blobPut(t, 0, lone)
	distinct[strings.TrimPrefix(loneRef, "sha256:")] = true

	// Every blob reaches two holders: the members' blob counts add up to at
	// least twice the distinct blobs, node1 (the uploader) holds them all, and
	// another member holds the lone one.
	var holdings string
	wait.For(t, 30*time.Second, "the blob replicas in the mesh status", func() (bool, string) {
		st, err := m.meshStatus(t, 0)
		if err != nil {
			return false, err.Error()
		}
		var total int64
		desc, loneHolder := "", ""
		for _, mv := range st.Members {
			total += mv.Blobs
			desc += fmt.Sprintf(" %s:%d blobs/%d bytes", mv.Name, mv.Blobs, mv.Bytes)
			if mv.Name != "node1" && mv.Bytes >= loneSize {
				loneHolder = mv.Name
			}
		}
		n1, _ := st.member("node1")
		holdings = desc
		return total >= int64(2*len(distinct)) && n1.Blobs == int64(len(distinct)) && loneHolder != "",
			fmt.Sprintf("want node1 holding all %d blobs, %d holdings in all, and a second holder of the %d-byte blob; members:%s",
				len(distinct), 2*len(distinct), loneSize, desc)
	})

	t.Logf("replicated; members:%s", holdings)

	// Kill the uploader. Through node2 (which never fetched these), the named
	// firmware and the lone blob still come, from the replica, unchanged.
	n1 := m.nodes[0]
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case <-n1.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("node1 did not exit after SIGKILL")
	}
	for _, c := range []struct{ ref, sum string }{
		{"fw-esp8266.tar.gz", named["fw-esp8266.tar.gz"]},
		{loneRef, strings.TrimPrefix(loneRef, "sha256:")},
	} {
		outFile := filepath.Join(m.dir, "after-kill.out")
		var last result
		wait.For(t, 60*time.Second, "blob get through node2 after node1's death", func() (bool, string) {
			os.Remove(outFile)
			last = m.runOn(t, 1, "blob", "get", c.ref, "--job", job, "-o", outFile)
			return last.code == 0, fmt.Sprintf("blob get %s through node2 after node1's death: %v", c.ref, last)
		})
		t.Logf("blob get %s through node2 %v after node1's death", c.ref, time.Since(killed).Round(time.Millisecond))
		data, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(data); got != c.sum {
			t.Errorf("%s after node1's death: sha256 %s, want %s", c.ref, got, c.sum)
		}
	}
}

// blobPut runs `blob put FILE` through node i, checks that it prints the
// file's sha256:<hex>, and returns that reference.
func (m *mesh) blobPut(t *testing.T, i int, file string, args ...string) string {
	t.Helper()
	r := m.runOn(t, i, append([]string{"blob", "put", file}, args...)...)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "sha256:" + sha256Hex(data)
	if r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("blob put %s through %s: %v; want %s", file, m.nodes[i].spec.Name, r, want)
	}
	return want
}

// blobGet runs `blob get REF -o FILE [ARGS...]` through node i and returns
// the bytes; a REF that is a hash must come back with that hash.
func (m *mesh) blobGet(t *testing.T, i int, ref string, args ...string) []byte {
	t.Helper()
	f, err := os.CreateTemp(m.dir, "get-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	r := m.runOn(t, i, append([]string{"blob", "get", ref, "-o", f.Name()}, args...)...)
	if r.code != 0 {
		t.Fatalf("blob get %s through %s: %v", ref, m.nodes[i].spec.Name, r)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if h := strings.TrimPrefix(ref, "sha256:"); len(h) == 64 && sha256Hex(data) != h {
		t.Fatalf("blob get %s through %s: got bytes with sha256 %s", ref, m.nodes[i].spec.Name, sha256Hex(data))
	}
	return data
}

// randomFile writes size random bytes to a new file in the mesh's directory.
func (m *mesh) randomFile(t *testing.T, name string, size int) string {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(m.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// tarFile returns the content of the file name in the gzipped tarball data.
func tarFile(t *testing.T, data []byte, name string) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a gzip file: %v", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("the tarball holds no %s", name)
		}
		if err != nil {
			t.Fatalf("reading the tarball: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}
