package node

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ourci/ourci/node/api"
	"github.com/ourci/ourci/node/clock"
	"github.com/ourci/ourci/raftfsm"
)

// FuzzSpawnBody feeds arbitrary bodies through what POST /v1/spawn does
// with them: the strict decode, the validation, and the ledger command's
// wire form. Nothing may panic; what is accepted must encode and decode.
func FuzzSpawnBody(f *testing.F) {
	for _, s := range []string{
		`{"topic":"ourci/build/docker","args":["ci/all.sh"]}`,
		`{"topic":"t","image":"base:1","args":["a","b"],"env":["K=V"],"timeout":"90s","job_timeout":"1h","key":"k"}`,
		`{"topic":"t","args":[],"source":{"repo":"https://example.com/r.git","sha":"abc","branch":"main","pr":7}}`,
		`{"topic":"has space","args":["x"]}`,
		`{"topic":"t","args":["x"],"env":["NOEQUALS"]}`,
		`{"topic":"t","args":["x"],"timeout":"-5s"}`,
		`{"topic":"t","args":["x"],"unknown":1}`,
		`{"topic":"t","args":"notalist"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	n := &Node{cfg: Config{Clock: clock.NewManual(time.Unix(1700000000, 0)), JobTimeout: time.Hour}, fsm: raftfsm.NewFSM()}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.SpawnRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil {
			return
		}
		for _, p := range []Principal{{Cluster: true}, {Role: RoleOperate}, {Task: "t1", Attempt: 1}} {
			c, err := n.spawnCommand(req, p)
			if err != nil {
				continue
			}
			b, err := raftfsm.Encode(c)
			if err != nil {
				t.Fatalf("an accepted spawn does not encode: %v", err)
			}
			if _, err := raftfsm.Decode(b); err != nil {
				t.Fatalf("an accepted spawn does not decode: %v", err)
			}
			s := raftfsm.NewState()
			s.Apply(1, c) // must not panic, whatever it refuses
		}
	})
}
