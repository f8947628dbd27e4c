package node

import (
	"strings"
	"testing"

	"github.com/ourci/ourci/raftfsm"
)

// resetCommand withdraws exactly the records naming the node, in hash
// order, and nothing when none does.
func TestResetCommand(t *testing.T) {
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	s := &raftfsm.State{Blobs: map[string]*raftfsm.Blob{
		h('c'): {Holders: []string{"n1", "n2"}},
		h('a'): {Holders: []string{"n2"}},
		h('b'): {Holders: []string{"n1"}},
		h('d'): {},
	}}
	for _, tc := range []struct {
		node string
		want []string
	}{
		{"n2", []string{h('a'), h('c')}},
		{"n1", []string{h('b'), h('c')}},
		{"n3", nil},
	} {
		c := resetCommand(s, tc.node)
		if c.Type != raftfsm.CmdBatch {
			t.Fatalf("reset of %s: got a %v command, want a batch", tc.node, c.Type)
		}
		var got []string
		for _, p := range c.Batch {
			if p.Type != raftfsm.CmdBlobDropped || p.BlobDropped.Node != tc.node {
				t.Errorf("reset of %s: got part %v %+v, want blob_dropped of %s", tc.node, p.Type, p.BlobDropped, tc.node)
				continue
			}
			got = append(got, p.BlobDropped.Hash)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("reset of %s: got drops %v, want %v", tc.node, got, tc.want)
		}
	}
}
