package e2e

import (
	"testing"
	"time"
)

// TestLostTogether: the chaos checker excuses a blob that no live node can
// send only when every copy the ledger names went with a node lost for
// good, and the uploader's copy went (lost or wiped) within holderWindow
// of it: a double failure. A holder that is still alive, a loss long
// after the other, or a read that failed for another reason is not
// excused. (The 502's text is what seed 278924831 once produced.)
func TestLostTogether(t *testing.T) {
	sec := int64(time.Second)
	upload := 100 * sec
	r := &chaosRun{t: t, lost: map[string]int64{"n1": upload + 26*sec}, wipes: map[string][]int64{"n2": {upload + 29*sec}, "n4": {upload + 90*sec}}}
	body := func(list string) string {
		return `n2: GET /v1/blobs/x.bin?job=j: 502 { "schema_version": 1, "error": "node: no live node holds the blob: sha256:b83d43c98c31f761a0f68260c101b20801c5f458ab433b59efbb3e221f145004: ` + list + `", "code": "not_found" }`
	}
	cases := []struct {
		name   string
		up     string
		why    string
		excuse bool
	}{
		{"the holder lost, the uploader wiped 3 s later", "n2", body("n1: not reachable"), true},
		{"the uploader wiped long after the holder's loss", "n4", body("n1: not reachable"), false},
		{"a holder that is alive", "n2", body(`n1: not reachable\nn3: Get \"https://127.0.0.1:1/v1/internal/blobs/b8\": EOF`), false},
		{"the ledger names only the lost node", "n2", body("the ledger names only n1 as its holder, and its copy is gone"), true},
		{"another failure", "n2", `n2: GET /v1/blobs/x.bin?job=j: 500 { "error": "disk" }`, false},
	}
	for _, c := range cases {
		got := r.lostTogether([]blobAck{{node: c.up, at: upload}}, []blobMiss{{node: "n2", why: c.why}, {node: "n3", why: c.why}})
		if (got != "") != c.excuse {
			t.Errorf("%s: got %q, want excused %t", c.name, got, c.excuse)
		}
	}
}
